terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # The same provider range as deploy/terraform.
      version = "~> 7.5"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
