# One Fargate service per role. The single-writer service (direct mode's `run`, kafka mode's publisher)
# runs two tasks with `[ha]` on: one leads, the other waits and takes over; commits are fenced, so a deploy
# may start new tasks before the old ones stop. Without HA it runs one task and a deploy stops the old one
# first (max 100%): two writers of one connector must never overlap. Lake sinks share partitions in one
# consumer group and scale out.
locals {
  services = local.kafka ? {
    publisher = { command = ["run", "--config", "env:BINLAKE_CONFIG", "--sink", "kafka"], count = local.writers, single = true }
    lake-sink = { command = ["sink", "--config", "env:BINLAKE_CONFIG"], count = var.lake_sink_count, single = false }
    } : {
    run = { command = ["run", "--config", "env:BINLAKE_CONFIG"], count = local.writers, single = true }
  }
  writers = var.high_availability ? 2 : 1
  config = templatefile("${path.module}/binlake.toml.tftpl", {
    name         = var.name
    mysql_host   = var.mysql_host
    mysql_port   = var.mysql_port
    mysql_user   = var.mysql_user
    server_id    = var.mysql_server_id
    include      = jsonencode(var.include)
    bucket       = aws_s3_bucket.lake.bucket
    lake_prefix  = var.lake_prefix
    region       = local.region
    metrics_port = var.metrics_port
    sink_kind    = local.kafka ? "kafka" : "lake"
    kafka        = local.kafka
    brokers      = local.msk_bootstrap
    partitions   = var.topic_partitions
    # read by binlake itself (task role), so a rotated password is picked up without a redeploy
    mysql_secret_arn = aws_secretsmanager_secret.mysql.arn
    slack            = var.alerts_slack_secret_arn != null && var.alerts_slack_channel != null
    slack_channel    = coalesce(var.alerts_slack_channel, "none")
    ha               = var.high_availability
  })
  # injected by ECS at start (the Slack token only changes with a redeploy)
  secrets = var.alerts_slack_secret_arn == null ? [] : [
    { name = "BINLAKE_SLACK_TOKEN", valueFrom = var.alerts_slack_secret_arn }
  ]
}

resource "aws_ecs_cluster" "binlake" {
  name = local.prefix
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  configuration {
    execute_command_configuration {
      kms_key_id = aws_kms_key.binlake.arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.task[keys(local.services)[0]].name
      }
    }
  }
  tags = local.tags
}

resource "aws_ecs_task_definition" "binlake" {
  for_each                 = local.services
  family                   = "${local.prefix}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  # the only writable path: the checkpoint of `--sink stdout` and scratch space (the lake keeps its
  # progress in Delta, so nothing here must survive the task)
  volume {
    name = "state"
  }
  container_definitions = jsonencode([{
    name                   = "binlake"
    image                  = var.image
    command                = each.value.command
    essential              = true
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    privileged             = false
    # binlake drains within 25 s of SIGTERM; ECS waits this long before SIGKILL
    stopTimeout = 30
    environment = [
      { name = "BINLAKE_CONFIG", value = local.config },
      { name = "BINLAKE_LOG_FORMAT", value = "json" },
      { name = "AWS_REGION", value = local.region },
    ]
    secrets      = local.secrets
    portMappings = [{ containerPort = var.metrics_port, protocol = "tcp" }]
    mountPoints  = [{ sourceVolume = "state", containerPath = "/var/lib/binlake", readOnly = false }]
    healthCheck = {
      command     = ["CMD", "binlake", "health", "--url", "http://127.0.0.1:${var.metrics_port}/readyz"]
      interval    = 15
      timeout     = 5
      retries     = 4
      startPeriod = 60
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.task[each.key].name
        awslogs-region        = local.region
        awslogs-stream-prefix = "binlake"
      }
    }
    # CloudWatch agent / Prometheus ECS service discovery reads these labels
    dockerLabels = {
      ECS_PROMETHEUS_EXPORTER_PORT = tostring(var.metrics_port)
      ECS_PROMETHEUS_METRICS_PATH  = "/metrics"
      "binlake.connector"          = var.name
      "binlake.role"               = each.key
    }
  }])
  tags = local.tags
}

resource "aws_ecs_service" "binlake" {
  for_each         = local.services
  name             = "${local.prefix}-${each.key}"
  cluster          = aws_ecs_cluster.binlake.id
  task_definition  = aws_ecs_task_definition.binlake[each.key].arn
  desired_count    = each.value.count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  # without HA a single writer is stopped before its replacement starts; with HA and for sinks, tasks roll
  deployment_minimum_healthy_percent = each.value.single && !var.high_availability ? 0 : 50
  deployment_maximum_percent         = each.value.single && !var.high_availability ? 100 : 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }
  propagate_tags = "SERVICE"
  tags           = local.tags
}
