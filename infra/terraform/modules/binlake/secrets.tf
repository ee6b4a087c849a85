# The MySQL password, which binlake reads with its task role (`password = "secretsmanager:<arn>"`) at start
# and again when MySQL refuses it; its value is set outside Terraform (the runbook's "rotating secrets"),
# so it never lands in the Terraform state.
resource "aws_secretsmanager_secret" "mysql" {
  # checkov:skip=CKV2_AWS_57:the replication user's password is rotated with the database (docs/operations.md); automatic rotation would need a Lambda with rights on MySQL
  name        = "${local.prefix}/mysql"
  description = "Password of MySQL user ${var.mysql_user} for binlake ${var.name}"
  kms_key_id  = aws_kms_key.binlake.arn
  tags        = local.tags
}

locals {
  # the execution role injects only the Slack token; the task role reads the MySQL password itself
  injected_secret_arns = compact([var.alerts_slack_secret_arn])
}
