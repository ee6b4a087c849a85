# The lake bucket, the Athena results bucket and the access-log bucket both log to. All three: SSE-KMS,
# versioning, public access blocked, TLS-only.
locals {
  buckets = {
    lake           = var.lake_bucket_name
    athena_results = "${var.lake_bucket_name}-athena-results"
    access_logs    = "${var.lake_bucket_name}-access-logs"
  }
}

resource "aws_s3_bucket" "lake" {
  # checkov:skip=CKV_AWS_144:cross-region replication is a disaster-recovery choice of the account; the lake can be rebuilt from MySQL by a snapshot
  # checkov:skip=CKV2_AWS_62:nothing consumes object events; Athena and Glue read the Delta log
  bucket = local.buckets.lake
  tags   = local.tags
}

resource "aws_s3_bucket" "athena_results" {
  # checkov:skip=CKV_AWS_144:query results are disposable; no replication
  # checkov:skip=CKV2_AWS_62:nothing consumes object events of query results
  bucket = local.buckets.athena_results
  tags   = local.tags
}

resource "aws_s3_bucket" "access_logs" {
  # checkov:skip=CKV_AWS_18:this is the access-log bucket; logging it to itself would loop
  # checkov:skip=CKV_AWS_144:access logs are not replicated
  # checkov:skip=CKV2_AWS_62:nothing consumes object events of access logs
  bucket = local.buckets.access_logs
  tags   = local.tags
}

locals {
  bucket_ids = {
    lake           = aws_s3_bucket.lake.id
    athena_results = aws_s3_bucket.athena_results.id
    access_logs    = aws_s3_bucket.access_logs.id
  }
  bucket_arns = {
    lake           = aws_s3_bucket.lake.arn
    athena_results = aws_s3_bucket.athena_results.arn
    access_logs    = aws_s3_bucket.access_logs.arn
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket                  = aws_s3_bucket.lake.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_public_access_block" "athena_results" {
  bucket                  = aws_s3_bucket.athena_results.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  bucket                  = aws_s3_bucket.access_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_versioning" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_versioning" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.binlake.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.binlake.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.binlake.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "lake" {
  bucket        = aws_s3_bucket.lake.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "lake/"
}

resource "aws_s3_bucket_logging" "athena_results" {
  bucket        = aws_s3_bucket.athena_results.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "athena-results/"
}

# Vacuum deletes the Parquet files Delta no longer references, and Delta's log cleanup (at checkpoints,
# after delta.logRetentionDuration) deletes old JSON commits. With versioning both become noncurrent
# versions, kept noncurrent_version_expiration_days for recovery, then expired here; the delete markers
# left behind are removed too.
resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    id     = "vacuumed-files-and-old-delta-log"
    status = "Enabled"
    filter {
      prefix = "${var.lake_prefix}/"
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }
  rule {
    id     = "unfinished-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id
  rule {
    id     = "query-results"
    status = "Enabled"
    filter {}
    expiration {
      days = 30
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    id     = "access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "tls_only" {
  for_each = local.bucket_arns
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value, "${each.value}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  dynamic "statement" {
    for_each = each.key == "access_logs" ? [1] : []
    content {
      sid       = "S3ServerAccessLogs"
      actions   = ["s3:PutObject"]
      resources = ["${each.value}/*"]
      principals {
        type        = "Service"
        identifiers = ["logging.s3.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "tls_only" {
  for_each = local.bucket_ids
  bucket   = each.value
  policy   = data.aws_iam_policy_document.tls_only[each.key].json
}
