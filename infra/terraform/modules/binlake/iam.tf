# Two roles: ECS's execution role (pull the image, write logs, read the secrets it injects) and the task
# role binlake runs as, limited to its lake prefix, its Glue databases, its cluster's topics and group,
# and its own secret.
data "aws_iam_policy_document" "ecs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${local.prefix}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  count = length(local.injected_secret_arns) > 0 ? 1 : 0
  statement {
    sid       = "InjectSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.injected_secret_arns
  }
  statement {
    sid       = "DecryptSecrets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.binlake.arn]
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  count  = length(local.injected_secret_arns) > 0 ? 1 : 0
  name   = "secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets[0].json
}

resource "aws_iam_role" "task" {
  name               = "${local.prefix}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
  tags               = local.tags
}

locals {
  lake_arn  = "${aws_s3_bucket.lake.arn}/${var.lake_prefix}"
  glue_base = "arn:${local.partition}:glue:${local.region}:${local.account}"
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "ListLakePrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.lake.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.lake_prefix, "${var.lake_prefix}/*"]
    }
  }
  statement {
    sid       = "ReadWriteLakePrefix"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.lake_arn}/*"]
  }
  statement {
    sid       = "LakeKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.binlake.arn]
  }
  statement {
    sid = "GlueTables"
    actions = [
      "glue:GetDatabase",
      "glue:GetTable",
      "glue:GetTables",
      "glue:CreateTable",
      "glue:UpdateTable",
    ]
    resources = concat(
      ["${local.glue_base}:catalog"],
      [for d in local.glue_databases : "${local.glue_base}:database/${d}"],
      [for d in local.glue_databases : "${local.glue_base}:table/${d}/*"],
    )
  }
  statement {
    sid       = "OwnSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.mysql.arn]
  }
  dynamic "statement" {
    for_each = local.kafka ? [1] : []
    content {
      sid       = "KafkaCluster"
      actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
      resources = [local.msk_arn]
    }
  }
  dynamic "statement" {
    for_each = local.kafka ? [1] : []
    content {
      sid = "KafkaTopics"
      actions = [
        "kafka-cluster:CreateTopic",
        "kafka-cluster:DescribeTopic",
        "kafka-cluster:DescribeTopicDynamicConfiguration",
        "kafka-cluster:ReadData",
        "kafka-cluster:WriteData",
        "kafka-cluster:WriteDataIdempotently",
      ]
      resources = local.msk_topic_arns
    }
  }
  dynamic "statement" {
    for_each = local.kafka ? [1] : []
    content {
      sid       = "KafkaGroup"
      actions   = ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"]
      resources = [local.msk_group_arn]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "binlake"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}
