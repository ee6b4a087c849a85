resource "aws_cloudwatch_log_group" "task" {
  for_each          = local.services
  name              = "/ecs/${local.prefix}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.binlake.arn
  tags              = local.tags
}
