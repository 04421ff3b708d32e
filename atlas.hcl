// Atlas CLI environments, for people who run the Atlas CLI themselves. The usersvc binary does the
// same declarative diff with the Atlas Go engine built in (`usersvc migrate`), so neither CI nor
// `make run` needs this file or the CLI.
//
//   DATABASE_URL=mysql://root:pass@localhost:3306/usersvc \
//   ATLAS_DEV_URL=docker://mysql/8/dev \
//   atlas schema apply --env local
//
// src is the same schema folder sqlc reads; dev is a scratch database Atlas may wipe.

variable "url" {
  type    = string
  default = getenv("DATABASE_URL")
}

variable "dev" {
  type    = string
  default = getenv("ATLAS_DEV_URL")
}

env "local" {
  src = "file://schema"
  url = var.url
  dev = var.dev
}

// MariaDB as the dev database (what this repository's CI uses): ATLAS_DEV_URL=docker://mariadb/10.11/dev
env "ci" {
  src = "file://schema"
  url = var.url
  dev = var.dev
}
