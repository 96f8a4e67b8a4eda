//! `difyplan calibrate`: connect read-only to Dify's PostgreSQL, measure the load over a window,
//! print it, and optionally write the measured profile and compare it with a configuration.

use super::Io;
use crate::calibrate::connect::{Limits, Target};
use crate::calibrate::window::{Window, parse_duration};
use crate::calibrate::{self, Compare, Report, WindowOut, activity, measure};
use crate::cli::{CalibrateArgs, CalibrateFormat};
use crate::exit::ExitStatus;
use crate::model::assumptions::Assumptions;
use crate::model::assumptions::Edition;
use crate::model::capacity;
use crate::read::compose::Options;
use crate::read::inputs;
use crate::render::write::{self, Existing, Output};
use anyhow::{Result, anyhow, bail};
use std::path::Path;
use std::time::Duration;

/// The longest `--sample-activity`.
const MAX_SAMPLE: f64 = 3600.0;

pub fn run(args: &CalibrateArgs, io: &mut Io) -> Result<ExitStatus> {
    // Every input is checked before the database is touched.
    let share = args.service_api_streaming_share;
    if let Some(share) = share
        && !(0.0..=1.0).contains(&share)
    {
        bail!("--service-api-streaming-share {share}: a share lies between 0 and 1");
    }
    let limits = Limits {
        connect: bound(&args.connect_timeout, "--connect-timeout")?,
        query: bound(&args.query_timeout, "--query-timeout")?,
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let window = Window::from_flags(args.since.as_deref(), args.from.as_deref(), args.to.as_deref(), now)?;
    let sample = match &args.sample_activity {
        Some(s) => {
            let secs = parse_duration(s).map_err(|e| anyhow!("--sample-activity `{s}`: {e}"))?;
            if secs > MAX_SAMPLE {
                bail!("--sample-activity `{s}`: at most 1h — a minute of a busy hour is enough");
            }
            Some(Duration::from_secs_f64(secs))
        }
        None => None,
    };
    if let Some(path) = &args.write_profile
        && !args.force
        && std::fs::symlink_metadata(path).is_ok()
    {
        bail!(
            "{}: already exists — nothing was measured; pass --force to replace it, or choose another file",
            path.display()
        );
    }
    let compare_deployment = match &args.compare {
        Some(dir) => Some(read_deployment(dir)?),
        None => None,
    };
    let target = target(args)?;

    let client = target.connect(limits)?;
    let who = target.describe();
    measure::check_schema(&client, &who)?;
    let mut measured = measure::measure(&client, &window, share).map_err(|e| anyhow!("{who}: {e:#}"))?;
    if measured.requests.total == 0 {
        bail!(
            "{who}: no workflow runs or messages between {} and {} — choose a window with traffic \
                (--since 30d, or --from/--to)",
            calibrate::window::format_time(window.from),
            calibrate::window::format_time(window.to)
        );
    }
    let activity = match sample {
        Some(d) => {
            // Progress on stderr: a line at the start and every 10 seconds, so a long sample is
            // visibly alive and stdout keeps only the report.
            writeln!(io.err, "sampling pg_stat_activity every 100 ms for {:.0} s…", d.as_secs_f64())?;
            let mut shown = 0u64;
            let err = &mut *io.err;
            let mut progress = |elapsed: Duration| {
                let tens = elapsed.as_secs() / 10;
                if tens > shown && elapsed < d {
                    shown = tens;
                    let _ = writeln!(err, "  {} s of {:.0} s sampled", tens * 10, d.as_secs_f64());
                }
            };
            let a = activity::sample(&client, d, measured.duration.all.mean, &mut progress)
                .map_err(|e| anyhow!("{who}: {e:#}"))?;
            writeln!(io.err, "sampled pg_stat_activity for {:.0} s", d.as_secs_f64())?;
            Some(a)
        }
        None => None,
    };
    drop(client);

    // The configuration's admission limits, when there is one: was the window held back by them?
    if let Some((_, d)) = &compare_deployment {
        measured.concurrency.judge(&calibrate::admission_limits(d, measured.mix.streaming_share), window.seconds());
    }
    let (profile, base, measured_fields) = calibrate::build_profile(&measured, activity.as_ref(), &who, &window)
        .map_err(|e| anyhow!("{who}: the measured profile is not valid: {e}"))?;
    let profile_name = args.write_profile.as_ref().map(|p| p.display().to_string());
    let qps = calibrate::plan_qps(&measured);
    let compare = compare_deployment.map(|(label, d)| {
        let assumptions = Assumptions::default();
        let load = capacity::Load { qps, profile: &profile, assumptions: &assumptions, edition: Edition::Ha };
        Compare {
            deployment: label,
            qps,
            lines: capacity::assess(&d, &load),
            saturated: measured.concurrency.limits.iter().any(|l| l.saturated),
        }
    });
    let caveats = calibrate::caveats(&measured);
    let report = Report {
        schema_version: calibrate::SCHEMA_VERSION,
        database: who,
        window: WindowOut::new(&window),
        size_command: calibrate::size_command(&measured, profile_name.as_deref()),
        measured,
        activity,
        profile,
        profile_base: base,
        profile_measured: measured_fields,
        compare,
        caveats,
    };
    if let Some(path) = &args.write_profile {
        let text = calibrate::profile_toml(&report);
        // What is written must be what `size --profile` reads.
        crate::model::profile::Profile::parse(&text, &path.display().to_string())
            .map_err(|e| anyhow!("the written profile does not read back ({e}); this is a bug"))?;
        write::write_all(
            &[Output { path: path.clone(), contents: text.into_bytes(), mode: None, owner: None }],
            if args.force { Existing::Replace } else { Existing::Keep },
        )?;
        writeln!(io.err, "wrote {}", path.display())?;
    }
    match args.format {
        CalibrateFormat::Table => write!(
            io.out,
            "{}",
            crate::report::fit::fit(&calibrate::render_table(&report), crate::report::fit::target_width(args.wide))
        )?,
        CalibrateFormat::Json => writeln!(io.out, "{}", serde_json::to_string_pretty(&report)?)?,
    }
    Ok(ExitStatus::Success)
}

/// A timeout flag: a duration of at least 0.1 s and at most an hour.
fn bound(text: &str, flag: &str) -> Result<Duration> {
    let secs = parse_duration(text).map_err(|e| anyhow!("{flag} `{text}`: {e}"))?;
    if !(0.1..=3600.0).contains(&secs) {
        bail!("{flag} `{text}`: between 0.1s and 1h");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Where to connect: --database-url, a Dify project, or the libpq environment.
fn target(args: &CalibrateArgs) -> Result<Target> {
    if let Some(url) = &args.database_url {
        let scheme = url.split(':').next().unwrap_or_default().to_ascii_lowercase();
        if scheme.starts_with("mysql") || scheme.starts_with("mariadb") {
            bail!(
                "--database-url {scheme}://…: calibrate reads PostgreSQL only — a Dify on MySQL cannot be \
                 measured yet; plan it with `difyplan size --db-type mysql` and a built-in profile"
            );
        }
        return Target::from_url(url, "--database-url");
    }
    if let Some(path) = &args.path {
        let (label, d) = read_deployment(path)?;
        if d.db_type == crate::dify::db_type::DbType::Mysql {
            bail!(
                "{label}: DB_TYPE=mysql — calibrate reads PostgreSQL only, so this Dify on MySQL cannot be \
                 measured yet; plan it with `difyplan size --db-type mysql` and a built-in profile"
            );
        }
        let api = d
            .components
            .iter()
            .find(|c| c.component == crate::dify::Component::Api)
            .or_else(|| d.components.first())
            .ok_or_else(|| anyhow!("{label}: no Dify service found — pass Dify's docker folder or its .env"))?;
        let get = |k: &str| api.env.get(k).map(|v| v.value.clone()).filter(|v| !v.is_empty());
        return Target::from_dify_env(get, &label);
    }
    match Target::from_libpq_env()? {
        Some(t) => Ok(t),
        None => bail!(
            "no database given — pass --database-url postgresql://USER@HOST:PORT/dify, the folder of \
                Dify's compose project (its .env), or set PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE"
        ),
    }
}

/// The first Dify deployment in a path, read the way `check` reads it.
fn read_deployment(path: &Path) -> Result<(String, crate::deployment::Deployment)> {
    let found = inputs::collect(&[path.to_path_buf()])?;
    let opts = Options { dify_version: None, pg_max_connections: None, app_role_superuser: None, host_cpus: 4 };
    let mut all = crate::read::deployments::deployments(&found, None, &[], None, &opts).map_err(anyhow::Error::msg)?;
    if all.is_empty() {
        bail!(
            "{}: no Dify .env, compose, Kubernetes or Helm values file found — pass the folder Dify is deployed from",
            path.display()
        );
    }
    let (label, _, d) = all.remove(0);
    Ok((label, d))
}
