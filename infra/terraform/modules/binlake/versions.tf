terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40"
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition
  # every name this module creates starts with the connector's name
  prefix = "binlake-${var.name}"
  kafka  = var.mode == "kafka"
  tags   = merge({ "binlake:connector" = var.name }, var.tags)
}
