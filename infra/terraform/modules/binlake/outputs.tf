output "athena_workgroup" {
  description = "Athena workgroup for queries over the lake (results encrypted in the results bucket)."
  value       = aws_athena_workgroup.lake.name
}

output "glue_databases" {
  description = "Glue databases binlake registers its tables in, binlake_quality included."
  value       = sort([for d in aws_glue_catalog_database.lake : d.name])
}

output "lake_root" {
  description = "lake.root of the connector."
  value       = "s3://${aws_s3_bucket.lake.bucket}/${var.lake_prefix}"
}

output "kafka_bootstrap_brokers" {
  description = "MSK bootstrap brokers (IAM over TLS); empty in direct mode."
  value       = local.msk_bootstrap
}

output "mysql_secret_arn" {
  description = "Secrets Manager secret whose value must be set to the MySQL password before the first deploy."
  value       = aws_secretsmanager_secret.mysql.arn
}

output "task_role_arn" {
  description = "The role binlake runs as."
  value       = aws_iam_role.task.arn
}

output "ecs_cluster" {
  description = "ECS cluster of the services."
  value       = aws_ecs_cluster.binlake.name
}

output "services" {
  description = "ECS service names by role."
  value       = { for k, s in aws_ecs_service.binlake : k => s.name }
}

output "tasks_security_group_id" {
  description = "Security group of the tasks (allow it on VPC endpoints if the subnets have no NAT)."
  value       = aws_security_group.tasks.id
}
