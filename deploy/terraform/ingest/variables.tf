variable "project_id" {
  description = "The project the service and the topics are in."
  type        = string
}

variable "region" {
  description = "The Cloud Run region."
  type        = string
}

variable "image" {
  description = "The gluefleet-ingest image (deploy/Dockerfile with --build-arg CONNECTOR=ingest), by digest."
  type        = string
}

variable "topics" {
  description = "Topic ids (in project_id) the service may publish to: each gets roles/pubsub.publisher for the service's account, on that topic only. Must hold every topic named in the ingest config's [topics]."
  type        = list(string)

  validation {
    condition     = length(var.topics) > 0
    error_message = "topics must name at least one topic."
  }
}

variable "config_secret" {
  description = "The Secret Manager secret holding the ingest config TOML (topics, credentials as SHA-256 digests). Created outside Terraform, so no credential digest enters the state."
  type        = string
  default     = "gluefleet-ingest-config"
}

variable "config_secret_version" {
  description = "The config secret's version the revision mounts."
  type        = string
  default     = "latest"
}

variable "max_instances" {
  description = "Most instances Cloud Run runs at once."
  type        = number
  default     = 10
}

variable "deletion_protection" {
  description = "Refuse to destroy the service."
  type        = bool
  default     = true
}
