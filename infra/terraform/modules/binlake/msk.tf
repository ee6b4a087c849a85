# MSK for kafka mode: IAM authentication only, TLS in transit, encrypted at rest with the module's key.
# Topics are created by binlake itself (kafka.topics.*); the cluster refuses auto-creation so a typo
# never makes a topic with the wrong settings.
resource "aws_msk_serverless_cluster" "binlake" {
  count        = local.kafka && var.msk_kind == "serverless" ? 1 : 0
  cluster_name = local.prefix
  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.msk[0].id]
  }
  client_authentication {
    sasl {
      iam {
        enabled = true
      }
    }
  }
  tags = local.tags
}

resource "aws_msk_configuration" "binlake" {
  count          = local.kafka && var.msk_kind == "provisioned" ? 1 : 0
  name           = local.prefix
  kafka_versions = [var.msk_kafka_version]
  server_properties = join("\n", [
    "auto.create.topics.enable=false",
    "default.replication.factor=3",
    "min.insync.replicas=2",
    "unclean.leader.election.enable=false",
    # the publisher's largest record (a row of big JSON/BLOB values) must fit: kafka.producer.max_message_bytes
    "message.max.bytes=8388608",
  ])
}

resource "aws_cloudwatch_log_group" "msk" {
  count             = local.kafka && var.msk_kind == "provisioned" ? 1 : 0
  name              = "/msk/${local.prefix}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.binlake.arn
  tags              = local.tags
}

resource "aws_msk_cluster" "binlake" {
  count                  = local.kafka && var.msk_kind == "provisioned" ? 1 : 0
  cluster_name           = local.prefix
  kafka_version          = var.msk_kafka_version
  number_of_broker_nodes = var.msk_broker_count
  enhanced_monitoring    = "PER_TOPIC_PER_BROKER"
  broker_node_group_info {
    instance_type   = var.msk_broker_instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.msk[0].id]
    storage_info {
      ebs_storage_info {
        volume_size = var.msk_broker_volume_gb
      }
    }
    connectivity_info {
      public_access {
        type = "DISABLED"
      }
    }
  }
  client_authentication {
    unauthenticated = false
    sasl {
      iam = true
    }
  }
  encryption_info {
    encryption_at_rest_kms_key_arn = aws_kms_key.binlake.arn
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }
  configuration_info {
    arn      = aws_msk_configuration.binlake[0].arn
    revision = aws_msk_configuration.binlake[0].latest_revision
  }
  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.msk[0].name
      }
    }
  }
  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }
      node_exporter {
        enabled_in_broker = true
      }
    }
  }
  tags = local.tags
}

locals {
  msk_arn = !local.kafka ? null : (
    var.msk_kind == "serverless" ? aws_msk_serverless_cluster.binlake[0].arn : aws_msk_cluster.binlake[0].arn
  )
  msk_uuid = !local.kafka ? null : (
    var.msk_kind == "serverless" ? aws_msk_serverless_cluster.binlake[0].cluster_uuid : aws_msk_cluster.binlake[0].cluster_uuid
  )
  msk_bootstrap = !local.kafka ? "" : (
    var.msk_kind == "serverless" ? aws_msk_serverless_cluster.binlake[0].bootstrap_brokers_sasl_iam : aws_msk_cluster.binlake[0].bootstrap_brokers_sasl_iam
  )
  # IAM resource ARNs of the connector's topics and consumer group (kafka-cluster:* actions)
  # (the schema-change topic is named after the connector; every other topic and the group start with `<name>.`)
  msk_topic_arns = !local.kafka ? [] : [
    "arn:${local.partition}:kafka:${local.region}:${local.account}:topic/${local.prefix}/${local.msk_uuid}/${var.name}",
    "arn:${local.partition}:kafka:${local.region}:${local.account}:topic/${local.prefix}/${local.msk_uuid}/${var.name}.*",
  ]
  msk_group_arn = !local.kafka ? null : "arn:${local.partition}:kafka:${local.region}:${local.account}:group/${local.prefix}/${local.msk_uuid}/${var.name}.*"
}
