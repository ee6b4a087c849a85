variable "name" {
  description = "Connector name (the `name` key of the binlake config): prefixes every resource, topic and Glue database."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name: 2-31 characters, lower-case letters, digits and '-', starting with a letter."
  }
}

variable "mode" {
  description = "`direct`: one `binlake run` task writes the lake. `kafka`: a publisher task (`binlake run --sink kafka`) writes MSK topics and `lake_sink_count` tasks of `binlake sink` write the lake."
  type        = string
  default     = "direct"
  validation {
    condition     = contains(["direct", "kafka"], var.mode)
    error_message = "mode is `direct` or `kafka`."
  }
}

variable "image" {
  description = "The binlake container image (built from infra/Dockerfile and pushed to ECR), with tag or digest."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the tasks and the MSK cluster; it must reach the MySQL server."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the tasks and MSK (at least two, in different availability zones)."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids: at least two subnets in different availability zones."
  }
}

variable "mysql_host" {
  description = "Host name of the MySQL/Aurora writer binlake replicates from."
  type        = string
}

variable "mysql_port" {
  description = "MySQL port."
  type        = number
  default     = 3306
}

variable "mysql_user" {
  description = "MySQL user with REPLICATION SLAVE, REPLICATION CLIENT and SELECT on the included databases."
  type        = string
  default     = "binlake"
}

variable "mysql_security_group_id" {
  description = "Security group of the MySQL server; the module allows the tasks' group to reach mysql_port on it."
  type        = string
}

variable "mysql_server_id" {
  description = "Replica server_id binlake uses; unique among the server's replicas."
  type        = number
  default     = 5401
}

variable "include" {
  description = "Tables to replicate, as `db.*` or `db.table` patterns (the config's source.include)."
  type        = list(string)
}

variable "glue_databases" {
  description = "MySQL databases replicated: one Glue database each, plus binlake_quality. Give each name as binlake encodes it (docs/architecture.md, names): a lower-case name of letters, digits and `_` stays as it is."
  type        = list(string)
  validation {
    condition     = alltrue([for d in var.glue_databases : can(regex("^[a-z0-9_]{1,255}$", d))])
    error_message = "glue_databases: give each database as binlake encodes it (lower-case letters, digits, `_`)."
  }
}

variable "lake_bucket_name" {
  description = "Name of the S3 bucket created for the lake (globally unique)."
  type        = string
}

variable "lake_prefix" {
  description = "Prefix inside the bucket under which binlake writes its tables and state (no leading or trailing '/')."
  type        = string
  default     = "lake"
}

variable "noncurrent_version_expiration_days" {
  description = "Days a deleted object version is kept before S3 expires it: Parquet files removed by vacuum and JSON commits removed by Delta's log cleanup (recoverable until then)."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention of the tasks' logs."
  type        = number
  default     = 365
}

variable "msk_kind" {
  description = "`serverless` (IAM auth only) or `provisioned`; only used when mode = kafka."
  type        = string
  default     = "serverless"
  validation {
    condition     = contains(["serverless", "provisioned"], var.msk_kind)
    error_message = "msk_kind is `serverless` or `provisioned`."
  }
}

variable "msk_kafka_version" {
  description = "Kafka version of a provisioned MSK cluster."
  type        = string
  default     = "3.6.0"
}

variable "msk_broker_instance_type" {
  description = "Broker instance type of a provisioned MSK cluster."
  type        = string
  default     = "kafka.m7g.large"
}

variable "msk_broker_count" {
  description = "Brokers of a provisioned MSK cluster (a multiple of the subnets' count)."
  type        = number
  default     = 3
}

variable "msk_broker_volume_gb" {
  description = "EBS volume per broker of a provisioned MSK cluster, in GiB."
  type        = number
  default     = 500
}

variable "topic_partitions" {
  description = "Partitions of each table topic binlake creates (kafka.topics.partitions); bounds how many lake sink tasks share the work."
  type        = number
  default     = 6
}

variable "high_availability" {
  description = "Run the single-writer service (direct mode's `run`, kafka mode's publisher) as two tasks with `[ha]` on: one leads, the other takes over within 30 s of its end; every Delta commit is fenced by the leader's epoch."
  type        = bool
  default     = true
}

variable "lake_sink_count" {
  description = "`binlake sink` tasks in kafka mode (one consumer group; more than the topics' partitions idle)."
  type        = number
  default     = 2
}

variable "task_cpu" {
  description = "Fargate CPU units per task."
  type        = number
  default     = 2048
}

variable "task_memory" {
  description = "Fargate memory per task, MiB (binlake is bounded by its buffer settings; 4096 leaves room for MERGE)."
  type        = number
  default     = 4096
}

variable "metrics_port" {
  description = "Port of /metrics, /healthz and /readyz in the container (observe.listen)."
  type        = number
  default     = 9464
}

variable "metrics_scraper_security_group_id" {
  description = "Security group of the Prometheus scraper (or CloudWatch agent) allowed to read metrics_port; null: none."
  type        = string
  default     = null
}

variable "alerts_slack_secret_arn" {
  description = "Optional Secrets Manager secret holding the Slack bot token for alerts (injected as BINLAKE_SLACK_TOKEN)."
  type        = string
  default     = null
}

variable "alerts_slack_channel" {
  description = "Slack channel (e.g. `#cdc-alerts`) for binlake's alerts, posted with the bot token in alerts_slack_secret_arn; null: no Slack alerts."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
