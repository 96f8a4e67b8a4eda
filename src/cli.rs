//! The command line: clap definitions only. Shared plan options are one flattened struct so
//! `size`, `render` and `matrix` accept the same words.

use crate::dify::DifyVersion;
use crate::findings::Severity;
use crate::model::assumptions::{Edition, Target};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Plan the capacity of a self-hosted Dify deployment and keep its configuration honest.
#[derive(Debug, Parser)]
#[command(name = "difyplan", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute every sizing knob for a target QPS and prove the connection budget fits.
    Size(SizeArgs),
    /// Check committed Dify configuration against its connection budget (a CI gate).
    Check(CheckArgs),
    /// Print the config matrix (every profile, target and tier), or regenerate its files.
    Matrix(MatrixArgs),
    /// Write a plan as the files operators deploy: .env, compose override, Kubernetes, Helm values.
    Render(RenderArgs),
    /// The built-in templates `render` uses: list them, or export them to edit.
    Templates(TemplatesArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the man page (roff), generated from the same definitions as --help.
    Man,
    /// Print the JSON Schema of a JSON output (`size --format json` or `check --format json`).
    Schema(SchemaArgs),
    /// Measure a running Dify's load from its PostgreSQL (read-only) and write a profile for `size`.
    Calibrate(CalibrateArgs),
    /// Explain a finding code of `check`: what it means, what was measured, how to fix or accept it.
    Explain(ExplainArgs),
    /// Print difyplan's own documentation, embedded in the binary: the facts and rules of the model
    /// (`docs model 8` prints §8, which outputs cite as docs/model.md §8), the pooler, the
    /// simulation, the alerts.
    Docs(DocsArgs),
}

#[derive(Debug, Args)]
pub struct DocsArgs {
    /// The document: model, pooler, simulation or alerts; without it, the list.
    #[arg(value_name = "DOC")]
    pub doc: Option<String>,
    /// One section of it, by its number (`8` or `§8`); without it, the whole document.
    #[arg(value_name = "SECTION")]
    pub section: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The finding code, e.g. pool-deadlock-risk.
    #[arg(value_name = "CODE", required_unless_present = "list")]
    pub code: Option<String>,
    /// List every code with its severity and one line.
    #[arg(long, conflicts_with = "code")]
    pub list: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The JSON documents difyplan prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// `size --format json` (and `render`'s plans).
    Plan,
    /// `check --format json`.
    Check,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which document.
    #[arg(value_enum)]
    pub kind: SchemaKind,
}

/// Whether the application's database role is a superuser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppRole {
    /// Dify's default `postgres` role: may also use the superuser-reserved slots.
    Superuser,
    /// A dedicated non-superuser role: `superuser_reserved_connections` are withheld from it.
    Dedicated,
}

/// What a plan is made from: shared by every command that plans.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Target requests per second at the api.
    #[arg(long, value_name = "QPS", allow_negative_numbers = true, required_unless_present = "max_qps")]
    pub qps: Option<f64>,
    /// Instead of --qps: plan for the highest QPS that --pg-max-connections holds.
    #[arg(long, requires = "pg_max_connections", conflicts_with = "qps")]
    pub max_qps: bool,
    /// Workload profile: a built-in name (chat, workflow, agent, benchmark) or a TOML file.
    #[arg(long, value_name = "NAME|FILE", default_value = "chat", value_parser = ProfileName, hide_possible_values = true)]
    pub profile: String,
    /// Where Dify runs.
    #[arg(long, value_enum, default_value_t = Target::Compose)]
    pub target: Target,
    /// Minimum replicas and headroom: the vendor's three templates.
    #[arg(long, value_enum, default_value_t = Edition::Ha)]
    pub edition: Edition,
    /// Dify release whose layout and components to plan for (1.0.0 or later; `1.12` is the series' newest).
    #[arg(long, value_name = "VERSION", default_value = "1.16.1", value_parser = parse_version)]
    pub dify_version: DifyVersion,
    /// Do not run api_websocket (remove `collaboration` from COMPOSE_PROFILES).
    #[arg(long)]
    pub no_collaboration: bool,
    /// The application's database role. A dedicated role cannot use the 3 superuser-reserved slots.
    #[arg(long, value_enum, default_value_t = AppRole::Dedicated)]
    pub app_role: AppRole,
    /// Dify's DB_TYPE: the database the plan and its files are for.
    #[arg(long, value_enum, default_value_t = crate::dify::db_type::DbType::Postgresql)]
    pub db_type: crate::dify::db_type::DbType,
    /// A fixed max_connections (managed databases). Without it difyplan chooses one.
    #[arg(long, visible_alias = "db-max-connections", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=262_143))]
    pub pg_max_connections: Option<u64>,
    /// Memory of the database host, e.g. 16GiB (default: the smallest that holds the plan).
    #[arg(long, visible_alias = "db-memory", value_name = "SIZE", value_parser = crate::model::pgtune::parse_memory)]
    pub pg_memory: Option<u64>,
    /// CPUs of the database host (default: the plan's database cores).
    #[arg(long, visible_alias = "db-cpus", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pg_cpus: Option<u32>,
    /// Storage of the PostgreSQL host.
    #[arg(long, value_enum, default_value_t = crate::model::pgtune::Storage::Ssd)]
    pub pg_storage: crate::model::pgtune::Storage,
    /// PostgreSQL major version the settings are for (Dify's compose ships 15).
    #[arg(long, value_name = "MAJOR", default_value_t = 15, value_parser = clap::value_parser!(u32).range(10..=18))]
    pub pg_version: u32,
    /// Where workflow logs go: PostgreSQL (Dify's default), the Celery repositories, or a log store.
    #[arg(long, value_enum, default_value_t = crate::model::storage::LogStore::Postgres)]
    pub workflow_log_store: crate::model::storage::LogStore,
    /// Days workflow logs are kept (default: for ever, as Dify keeps them).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub retention_days: Option<u32>,
    /// A pooler in front of PostgreSQL: PgBouncer (transaction mode) for the api and worker.
    #[arg(long, value_enum, default_value_t = crate::model::pooler::Pooler::None)]
    pub pooler: crate::model::pooler::Pooler,
    /// Override a model assumption, e.g. `--assume quantile=0.9999` (repeatable; a wrong key lists the
    /// valid ones, `--format json` shows each value in `input.assumptions`).
    #[arg(long, value_name = "KEY=VALUE")]
    pub assume: Vec<String>,
    #[command(flatten)]
    pub overrides: ProfileOverrides,
}

/// `--profile NAME|FILE`: any text is taken (a file is read later), and the built-in names are
/// the possible values, so shell completions offer them.
#[derive(Debug, Clone, Copy)]
pub struct ProfileName;

impl clap::builder::TypedValueParser for ProfileName {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(crate::model::profile::BUILTIN.iter().map(|(name, _)| clap::builder::PossibleValue::new(*name))))
    }
}

fn parse_version(s: &str) -> Result<DifyVersion, String> {
    s.parse()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SizeFormat {
    /// Tables for people.
    Table,
    /// One versioned JSON document for scripts.
    Json,
    /// Dify `.env` keys with their values.
    Env,
    /// The PostgreSQL settings as a `postgresql.conf` block (PGTune's first form).
    PostgresqlConf,
    /// The PostgreSQL settings as `ALTER SYSTEM SET` statements for psql (PGTune's second form).
    AlterSystem,
}

#[derive(Debug, Args)]
pub struct SizeArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SizeFormat::Table)]
    pub format: SizeFormat,
    /// Show every value with the formula and the numbers that produced it.
    #[arg(long)]
    pub explain: bool,
    /// Full-width tables and unwrapped lines, whatever the terminal or COLUMNS (or a pipe).
    #[arg(long)]
    pub wide: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// Tables, findings and one summary line.
    Human,
    /// One versioned JSON document.
    Json,
    /// GitHub Actions workflow-command annotations.
    Github,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
    /// GitLab Code Quality JSON, for merge requests' Code Quality report.
    Gitlab,
}

/// When the human format colours severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set or TERM is dumb.
    Auto,
    Always,
    Never,
}

/// The severity at which `check` exits 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
    Note,
    /// Never exit 1 for findings.
    Never,
}

impl FailOn {
    pub fn threshold(self) -> Option<Severity> {
        match self {
            FailOn::Error => Some(Severity::Error),
            FailOn::Warning => Some(Severity::Warning),
            FailOn::Note => Some(Severity::Note),
            FailOn::Never => None,
        }
    }
}

/// Later occurrences of a flag replace earlier ones, so the Action's own `--fail-on` and its
/// `args` input do not collide.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub struct CheckArgs {
    /// Files or folders to check (folders are walked); `-` reads one file from standard input.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
    pub format: CheckFormat,
    /// Exit 1 when a finding reaches this severity: error, warning, note or never.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Report only: exit 0 whatever is found (input errors still exit 2); wins over --fail-on.
    #[arg(long)]
    pub exit_zero: bool,
    /// Human format: only the findings and the summary line, not the deployments' tables.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Colour the human format's severities: auto (a terminal without NO_COLOR or TERM=dumb), always, never.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// max_connections of a managed database whose cap is not in the files (PostgreSQL or MySQL).
    #[arg(long, visible_alias = "db-max-connections", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=262_143))]
    pub pg_max_connections: Option<u64>,
    /// Dify release, where the files do not say.
    #[arg(long, value_name = "VERSION", value_parser = parse_version)]
    pub dify_version: Option<DifyVersion>,
    /// The application's database role, where DB_USERNAME does not say (default: superuser iff `postgres`).
    #[arg(long, value_enum)]
    pub app_role: Option<AppRole>,
    /// The allow-list (default: the nearest difyplan.toml from the current folder up to the repository root).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The .env compose interpolates from (default: the .env beside each compose file).
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// CPUs of the worker host, for CELERY_AUTO_SCALE without CELERY_MAX_WORKERS (default 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub host_cpus: Option<u64>,
    /// Connections to keep free for monitoring, backups and psql, counted in the budget.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub admin_reserve: u64,
    /// A Helm values file of one release; repeat in `helm -f` order (later files win).
    #[arg(long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// The chart the Helm values are for, where nothing beside them says: borispolonsky[@VERSION] or douban[@VERSION].
    #[arg(long, value_name = "NAME[@VERSION]")]
    pub chart: Option<String>,
    /// Full-width tables and unwrapped lines, whatever the terminal or COLUMNS (or a pipe).
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `check --qps`: the load the configuration must carry.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Judge the configuration against this load (requests/s at the api): capacity findings.
    #[arg(long, value_name = "QPS", allow_negative_numbers = true, help_heading = "Load")]
    pub qps: Option<f64>,
    /// The workload: a built-in profile or a TOML file (one `calibrate` wrote); default `chat`.
    /// Without --qps it says which apps run: with no chat share (`workflow`, `benchmark`, or
    /// `--chat-share 0`) the rules only chat apps need are not applied.
    #[arg(long, value_name = "NAME|FILE", help_heading = "Load", value_parser = ProfileName, hide_possible_values = true)]
    pub profile: Option<String>,
    /// Override a model assumption, e.g. `--assume quantile=0.9999` or `--assume chat_pool_factor=2.5`
    /// (the pool rules use the model's factors too).
    #[arg(long, value_name = "KEY=VALUE", help_heading = "Load")]
    pub assume: Vec<String>,
    /// With --qps: the edition whose CPU target the plan was made for (`size --edition`).
    #[arg(long, value_enum, default_value_t = Edition::Ha, help_heading = "Load")]
    pub edition: Edition,
    #[command(flatten)]
    pub overrides: ProfileOverrides,
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// Only this built-in profile.
    #[arg(long, value_name = "NAME", value_parser = ProfileName, hide_possible_values = true)]
    pub profile: Option<String>,
    /// Only this target.
    #[arg(long, value_enum)]
    pub target: Option<Target>,
    /// Regenerate the committed matrix files (one per profile and target).
    #[arg(long, conflicts_with_all = ["profile", "target"])]
    pub write: bool,
    /// With --write: replace files that differ.
    #[arg(long, requires = "write")]
    pub force: bool,
    /// The folder of the matrix files.
    #[arg(long, value_name = "DIR", default_value = "matrices")]
    pub dir: PathBuf,
    /// Print the tiers with a pooler in front of PostgreSQL (the committed files plan none).
    #[arg(long, value_enum, default_value_t = crate::model::pooler::Pooler::None, conflicts_with = "write")]
    pub pooler: crate::model::pooler::Pooler,
    /// Print the tiers for Dify's other database, MySQL (the committed files plan PostgreSQL).
    #[arg(long, value_enum, default_value_t = crate::dify::db_type::DbType::Postgresql, conflicts_with = "write")]
    pub db_type: crate::dify::db_type::DbType,
    /// Full-width tables and unwrapped lines, whatever the terminal or COLUMNS (or a pipe).
    #[arg(long)]
    pub wide: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(subcommand)]
    pub what: RenderCommand,
}

#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// A .env with every shared sizing key, grouped and commented; or patch an existing one.
    Env(RenderEnvArgs),
    /// docker-compose.override.yaml for Dify's compose file (plans for --target compose).
    Compose(RenderComposeArgs),
    /// Kubernetes manifests per component and the PostgreSQL settings (plans for --target kubernetes).
    Kubernetes(RenderKubernetesArgs),
    /// Values for a community Helm chart (plans for --target kubernetes).
    Helm(RenderHelmArgs),
    /// Prometheus alerting rules with the plan's thresholds (a PrometheusRule on --target kubernetes).
    Alerts(RenderAlertsArgs),
    /// The PostgreSQL settings as PGTune gives them: postgresql.conf and ALTER SYSTEM statements
    /// (`-o DIR` writes postgresql.conf and alter-system.sql), for a server you run yourself.
    Postgresql(RenderPostgresqlArgs),
}

#[derive(Debug, Args)]
pub struct RenderPostgresqlArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub out: RenderOutputArgs,
    /// To stdout: the ALTER SYSTEM statements instead of postgresql.conf.
    #[arg(long)]
    pub alter_system: bool,
}

/// Where rendered files go, shared by every render command.
#[derive(Debug, Clone, Args)]
pub struct RenderOutputArgs {
    /// Write the files into this folder (made when missing) instead of one document to stdout
    /// (`-o -` is stdout too).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
    /// Render with the templates in this folder (start from `difyplan templates export DIR`).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

impl RenderOutputArgs {
    /// The output folder; `None` for stdout (no `-o`, or `-o -`).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.output.as_deref().filter(|p| p.as_os_str() != "-")
    }
}

#[derive(Debug, Args)]
pub struct RenderEnvArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub out: RenderOutputArgs,
    /// Change only the shared sizing keys of this Dify .env; prints a unified diff.
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    pub patch: Option<PathBuf>,
    /// With --patch: apply the change (atomically), keeping FILE.bak.
    #[arg(long, requires = "patch")]
    pub write: bool,
    /// With --write: keep no FILE.bak.
    #[arg(long, requires = "write")]
    pub no_backup: bool,
}

#[derive(Debug, Args)]
pub struct RenderComposeArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub out: RenderOutputArgs,
    /// Dify's docker-compose.yaml the override is for: its database service and services are read.
    #[arg(long, value_name = "FILE")]
    pub compose_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RenderKubernetesArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub out: RenderOutputArgs,
}

/// The community Helm charts difyplan writes values for (docs/model.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HelmChart {
    /// BorisPolonsky/dify-helm.
    Borispolonsky,
    /// douban/charts (dify).
    Douban,
}

#[derive(Debug, Args)]
pub struct RenderHelmArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub out: RenderOutputArgs,
    /// The chart to write values for, and optionally its version: borispolonsky[@VERSION] or douban[@VERSION].
    #[arg(long, value_name = "NAME[@VERSION]", value_parser = parse_helm_chart)]
    pub chart: HelmChartSpec,
}

impl RenderHelmArgs {
    /// The chart's name as `--chart` takes it.
    pub fn chart_name(&self) -> &'static str {
        match self.chart.chart {
            HelmChart::Borispolonsky => "borispolonsky",
            HelmChart::Douban => "douban",
        }
    }
}

/// `--chart NAME[@VERSION]` of `render helm`, as `check` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmChartSpec {
    pub chart: HelmChart,
    /// The chart version as written, when given.
    pub version: Option<String>,
}

fn parse_helm_chart(s: &str) -> Result<HelmChartSpec, String> {
    let (chart, version) = crate::read::release::parse_chart_flag(s).map_err(|e| e.to_string())?;
    let chart = match chart {
        crate::read::helm::Chart::DifyHelm => HelmChart::Borispolonsky,
        crate::read::helm::Chart::Douban => HelmChart::Douban,
    };
    Ok(HelmChartSpec { chart, version })
}

#[derive(Debug, Args)]
pub struct RenderAlertsArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub out: RenderOutputArgs,
    /// How long every alert's condition must hold before it fires, e.g. 30s or 2m (default: each
    /// alert's own, docs/alerts.md).
    #[arg(long, value_name = "DURATION", value_parser = crate::render::alerts::parse_hold)]
    pub hold: Option<String>,
}

#[derive(Debug, Args)]
pub struct TemplatesArgs {
    #[command(subcommand)]
    pub what: TemplatesCommand,
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Print the names of the built-in templates.
    List,
    /// Write the built-in templates into a folder (made when missing), to edit and use with --templates.
    Export(TemplatesExportArgs),
}

#[derive(Debug, Args)]
pub struct TemplatesExportArgs {
    /// The folder to write into (made when missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Replace templates that already exist there.
    #[arg(long)]
    pub force: bool,
}

impl Default for LoadArgs {
    /// No load: `check` as without `--qps`.
    fn default() -> Self {
        LoadArgs {
            qps: None,
            profile: None,
            assume: Vec::new(),
            edition: Edition::Ha,
            overrides: ProfileOverrides::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CalibrateFormat {
    /// A report for people.
    Table,
    /// One versioned JSON document.
    Json,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// A Dify `.env` or compose project folder to read DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD,
    /// DB_DATABASE from (PGHOST/PGPORT, when set, replace its host and port).
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// A postgresql:// URL with the user, host, port and database, and sslmode or sslrootcert as parameters (prefer PGPASSWORD for the password).
    #[arg(long, value_name = "URL", conflicts_with = "path")]
    pub database_url: Option<String>,
    /// The window measured, back from --to (or now): e.g. 90m, 24h, 7d.
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    pub since: Option<String>,
    /// Start of the window, ISO 8601 (UTC when no offset is given).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the window, ISO 8601 (default: now).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CalibrateFormat::Table)]
    pub format: CalibrateFormat,
    /// Share of service-API requests that stream (no table of Dify records the response mode). Without it, 0.5 is assumed and the profile says so.
    #[arg(long, value_name = "SHARE")]
    pub service_api_streaming_share: Option<f64>,
    /// The longest reaching the database may take, all steps together (TCP, TLS, startup, authentication), e.g. 15s.
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub connect_timeout: String,
    /// The longest one query may run (the server cancels it; calibrate gives up soon after), e.g. 30s.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub query_timeout: String,
    /// Also sample pg_stat_activity every 100 ms for this long, e.g. 60s.
    #[arg(long, value_name = "DURATION")]
    pub sample_activity: Option<String>,
    /// Write the measured profile TOML here (for `size --profile FILE`).
    #[arg(long, value_name = "FILE")]
    pub write_profile: Option<PathBuf>,
    /// With --write-profile: replace an existing file.
    #[arg(long)]
    pub force: bool,
    /// The current configuration (a Dify compose folder, .env, manifests or values): its capacity beside the measured need.
    #[arg(long, value_name = "PATH")]
    pub compare: Option<PathBuf>,
    /// Full-width tables and unwrapped lines, whatever the terminal or COLUMNS (or a pipe).
    #[arg(long)]
    pub wide: bool,
}

/// Command-line overrides of profile values; `None` keeps the profile's value.
#[derive(Debug, Clone, Default, serde::Serialize, clap::Args, schemars::JsonSchema)]
pub struct ProfileOverrides {
    /// Override: mean seconds per request, LLM streaming included.
    #[arg(long, value_name = "S", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_seconds: Option<f64>,
    /// Override: share of requests in streaming mode (0..1).
    #[arg(long, value_name = "SHARE", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streaming_share: Option<f64>,
    /// Override: share of requests to chat apps (0..1).
    #[arg(long, value_name = "SHARE", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_share: Option<f64>,
    /// Override: mean connections per in-flight blocking request.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_mean: Option<f64>,
    /// Override: peak connections per in-flight blocking request.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_peak: Option<f64>,
    /// Override: api CPU ms per blocking request.
    #[arg(long, value_name = "MS", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_cpu_ms_blocking: Option<f64>,
    /// Override: api CPU ms per second a blocking request waits.
    #[arg(long, value_name = "MS", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_cpu_ms_per_wait_second: Option<f64>,
    /// Override: api CPU ms per streaming request.
    #[arg(long, value_name = "MS", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_cpu_ms_streaming: Option<f64>,
    /// Override: worker CPU ms per streaming run.
    #[arg(long, value_name = "MS", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_cpu_ms_streaming: Option<f64>,
    /// Override: PostgreSQL CPU ms per request.
    #[arg(long, value_name = "MS", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_cpu_ms: Option<f64>,
    /// Override: plugin daemon CPU ms per request.
    #[arg(long, value_name = "MS", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_cpu_ms: Option<f64>,
    /// Override: plugin daemon DB hold ms per request.
    #[arg(long, value_name = "MS", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_db_ms: Option<f64>,
    /// Override: background Celery tasks per request.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub celery_tasks: Option<f64>,
    /// Override: seconds per background Celery task.
    #[arg(long, value_name = "S", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub celery_task_seconds: Option<f64>,
    /// Override: worker CPU ms per background task.
    #[arg(long, value_name = "MS", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub celery_task_cpu_ms: Option<f64>,
    /// Override: Redis operations per request.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_ops: Option<f64>,
    /// Override: workflow-log bytes written per request.
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, help_heading = "Profile overrides")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_log_bytes: Option<f64>,
}

/// The model's and Dify's choices as command-line values. The model stays free of clap: its
/// enums get their names and help here, at the edge, once.
macro_rules! value_enum {
    ($ty:ty { $($variant:path => $name:literal, $help:literal;)* }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($variant),*]
            }
            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(match self {
                    $($variant => {
                        let v = clap::builder::PossibleValue::new($name);
                        if $help.is_empty() { v } else { v.help($help) }
                    })*
                })
            }
        }
    };
}

value_enum!(Target {
    Target::Compose => "compose", "docker compose on one host: no autoscaling, containers are recreated (no surge)";
    Target::Kubernetes => "kubernetes", "Kubernetes: replicas, an HPA maximum and rolling-update surge";
});

value_enum!(Edition {
    Edition::Test => "test", "";
    Edition::Ha => "ha", "";
    Edition::Performance => "performance", "";
});

value_enum!(crate::model::pgtune::Storage {
    crate::model::pgtune::Storage::Ssd => "ssd", "Solid-state disks: PGTune's default";
    crate::model::pgtune::Storage::Hdd => "hdd", "Spinning disks";
    crate::model::pgtune::Storage::Nvme => "nvme", "Local NVMe";
    crate::model::pgtune::Storage::San => "san", "A storage array over the network";
});

value_enum!(crate::model::pooler::Pooler {
    crate::model::pooler::Pooler::None => "none", "Every process connects to PostgreSQL itself (Dify's layout)";
    crate::model::pooler::Pooler::Pgbouncer => "pgbouncer", "PgBouncer in transaction mode in front of the api and worker processes";
});

value_enum!(crate::model::storage::LogStore {
    crate::model::storage::LogStore::Postgres => "postgres", "Dify's default: SQLAlchemy repositories, written on the request path";
    crate::model::storage::LogStore::Celery => "celery", "The Celery repositories: the writes leave the request path for the `workflow_storage` queue, still into PostgreSQL";
    crate::model::storage::LogStore::Logstore => "logstore", "A log store (Aliyun SLS) instead of PostgreSQL: the logs leave the database";
});

value_enum!(crate::dify::db_type::DbType {
    crate::dify::db_type::DbType::Postgresql => "postgresql", "PostgreSQL (Dify's default)";
    crate::dify::db_type::DbType::Mysql => "mysql", "MySQL 8 (Dify's compose service `db_mysql`), or a MySQL-compatible server";
});

value_enum!(Severity {
    Severity::Note => "note", "";
    Severity::Warning => "warning", "";
    Severity::Error => "error", "";
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_serialized_names() {
        for s in crate::model::pgtune::Storage::value_variants() {
            let name = s.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(
            <crate::model::pgtune::Storage as ValueEnum>::from_str("hdd", true),
            Ok(crate::model::pgtune::Storage::Hdd)
        );
        for t in Target::value_variants() {
            let name = t.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(serde_json::to_string(t).unwrap(), format!("\"{name}\""));
        }
        for e in Edition::value_variants() {
            let name = e.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(name.parse::<Edition>(), Ok(*e));
        }
    }
}
