variable "project_id" {
  description = "The project the topics, the workflow and its service account are in."
  type        = string
}

variable "region" {
  description = "The Workflows region, e.g. europe-west1."
  type        = string
}

variable "call_log_level" {
  description = "What Workflows logs of each call: LOG_ALL_CALLS, LOG_ERRORS_ONLY or LOG_NONE."
  type        = string
  default     = "LOG_ERRORS_ONLY"

  validation {
    condition     = contains(["LOG_ALL_CALLS", "LOG_ERRORS_ONLY", "LOG_NONE"], var.call_log_level)
    error_message = "call_log_level must be LOG_ALL_CALLS, LOG_ERRORS_ONLY or LOG_NONE."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the workflow."
  type        = bool
  default     = true
}
