terraform {
  # optional() with defaults in object types needs 1.3; 1.5 is a safe floor.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }

  # Keep state remote and locked when more than one person applies, e.g.:
  # backend "gcs" {
  #   bucket = "my-terraform-state"
  #   prefix = "gluefleet/legacy-rest"
  # }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
