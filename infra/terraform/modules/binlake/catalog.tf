# Glue databases binlake registers its Delta tables in (binlake creates and updates the tables), and the
# Athena workgroup analysts query them with.
locals {
  glue_databases = toset(concat(var.glue_databases, ["binlake_quality"]))
}

resource "aws_glue_catalog_database" "lake" {
  for_each     = local.glue_databases
  name         = each.value
  description  = "binlake ${var.name}: Delta tables replicated from MySQL database ${each.value}"
  location_uri = "s3://${aws_s3_bucket.lake.bucket}/${var.lake_prefix}/${each.value}"
  tags         = local.tags
}

resource "aws_athena_workgroup" "lake" {
  name          = local.prefix
  description   = "Queries over the ${var.name} lake"
  force_destroy = false
  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    result_configuration {
      output_location = "s3://${aws_s3_bucket.athena_results.bucket}/results/"
      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.binlake.arn
      }
    }
  }
  tags = local.tags
}
