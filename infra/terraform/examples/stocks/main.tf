# The stock-market connector (connectors/stocks.toml) on AWS in kafka mode: a publisher task tails the
# binlog into MSK Serverless, two lake sink tasks write Delta on S3, Glue and Athena serve it.
#   terraform init && terraform apply -var-file=stocks.tfvars
#   aws secretsmanager put-secret-value --secret-id "$(terraform output -raw mysql_secret_arn)" --secret-string '...'
terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "AWS region of the stack."
  type        = string
  default     = "us-east-1"
}

variable "image" {
  description = "binlake image in ECR (infra/Dockerfile), e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/binlake:1.0.0."
  type        = string
}

variable "vpc_id" {
  description = "VPC holding the MySQL server."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets in at least two availability zones."
  type        = list(string)
}

variable "mysql_host" {
  description = "MySQL/Aurora writer endpoint."
  type        = string
}

variable "mysql_security_group_id" {
  description = "Security group of the MySQL server."
  type        = string
}

variable "lake_bucket_name" {
  description = "Globally unique name of the lake bucket."
  type        = string
}

module "binlake" {
  source                  = "../../modules/binlake"
  name                    = "stocks"
  mode                    = "kafka"
  image                   = var.image
  vpc_id                  = var.vpc_id
  subnet_ids              = var.subnet_ids
  mysql_host              = var.mysql_host
  mysql_security_group_id = var.mysql_security_group_id
  include                 = ["stocks.*"]
  glue_databases          = ["stocks"]
  lake_bucket_name        = var.lake_bucket_name
  msk_kind                = "serverless"
  topic_partitions        = 6
  lake_sink_count         = 2
  tags                    = { team = "market-data" }
}

output "athena_workgroup" {
  description = "Run Athena queries (sql/athena/) in this workgroup."
  value       = module.binlake.athena_workgroup
}

output "glue_databases" {
  description = "Glue databases holding the stocks tables and the quality results."
  value       = module.binlake.glue_databases
}

output "mysql_secret_arn" {
  description = "Set the MySQL password here before the services start."
  value       = module.binlake.mysql_secret_arn
}
