# The tasks reach MySQL, MSK and AWS APIs over HTTPS; only the metrics scraper reaches them.
resource "aws_security_group" "tasks" {
  name        = "${local.prefix}-tasks"
  description = "binlake ${var.name} tasks"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "AWS APIs (S3, Glue, Secrets Manager, STS, ECR, CloudWatch) and Slack over HTTPS"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "tasks_mysql" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "MySQL replication and snapshot reads"
  ip_protocol                  = "tcp"
  from_port                    = var.mysql_port
  to_port                      = var.mysql_port
  referenced_security_group_id = var.mysql_security_group_id
}

resource "aws_vpc_security_group_ingress_rule" "mysql_from_tasks" {
  security_group_id            = var.mysql_security_group_id
  description                  = "binlake ${var.name} replicates from MySQL"
  ip_protocol                  = "tcp"
  from_port                    = var.mysql_port
  to_port                      = var.mysql_port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_vpc_security_group_ingress_rule" "metrics" {
  count                        = var.metrics_scraper_security_group_id == null ? 0 : 1
  security_group_id            = aws_security_group.tasks.id
  description                  = "Prometheus scrape of /metrics"
  ip_protocol                  = "tcp"
  from_port                    = var.metrics_port
  to_port                      = var.metrics_port
  referenced_security_group_id = var.metrics_scraper_security_group_id
}

resource "aws_security_group" "msk" {
  count       = local.kafka ? 1 : 0
  name        = "${local.prefix}-msk"
  description = "MSK cluster of binlake ${var.name}"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

# 9098: IAM authentication over TLS, the only listener the cluster enables
resource "aws_vpc_security_group_ingress_rule" "msk_from_tasks" {
  count                        = local.kafka ? 1 : 0
  security_group_id            = aws_security_group.msk[0].id
  description                  = "Kafka (IAM over TLS) from binlake tasks"
  ip_protocol                  = "tcp"
  from_port                    = 9098
  to_port                      = 9098
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_vpc_security_group_egress_rule" "tasks_msk" {
  count                        = local.kafka ? 1 : 0
  security_group_id            = aws_security_group.tasks.id
  description                  = "Kafka (IAM over TLS) to MSK"
  ip_protocol                  = "tcp"
  from_port                    = 9098
  to_port                      = 9098
  referenced_security_group_id = aws_security_group.msk[0].id
}
