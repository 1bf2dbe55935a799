terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # The same provider range as deploy/terraform; invoker_iam_disabled
      # on google_cloud_run_v2_service is in every 7.x.
      version = "~> 7.5"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
