# One customer-managed key encrypts the lake, the Athena results, the logs, the secret and MSK at rest.
data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_111:a key policy's "*" resource is the key itself; the account administers its own key
  # checkov:skip=CKV_AWS_356:a key policy's "*" resource is the key itself
  # checkov:skip=CKV_AWS_109:a key policy's "*" resource is the key itself; without the account statement the key cannot be managed
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
  statement {
    sid = "CloudWatchLogsEncrypt"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/ecs/${local.prefix}*"]
    }
  }
}

resource "aws_kms_key" "binlake" {
  description             = "${local.prefix}: lake, Athena results, logs, secrets, MSK"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = local.tags
}

resource "aws_kms_alias" "binlake" {
  name          = "alias/${local.prefix}"
  target_key_id = aws_kms_key.binlake.key_id
}
