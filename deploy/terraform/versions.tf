terraform {
  # optional() with defaults in object types needs 1.3; 1.5 is a safe floor.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 7.5.0 (September 30, 2025) is the first release whose
      # google_cloud_run_v2_worker_pool has startup_probe and liveness_probe
      # on its containers (CHANGELOG, #24418); ~> 7.5 takes any later 7.x.
      version = "~> 7.5"
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
