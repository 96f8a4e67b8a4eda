//! A deterministic discrete-event simulation of a plan's api and worker under load: requests hold
//! and nest connections as measured on a real Dify, so the tests can show a plan safe or not.
//!
//! What is modelled (docs/simulation.md says it for people):
//! - api: pods × processes × greenlets. A pod's processes accept from one listen backlog (FIFO,
//!   holding no connection); a request picks a pod at random, then a process by [`Routing`].
//! - worker: replicas × one gevent process with `-c` slots, all reading one broker queue (prefetch 1).
//! - Each process has its own QueuePool of `pool_size + max_overflow`; a checkout beyond it waits
//!   FIFO up to the pool timeout, then the request or run fails and releases what it holds.
//! - Optionally CPU: a gevent process is one core shared by its greenlets (processor sharing), so
//!   a request's CPU stretches with the process's load and so does the time it holds connections.
//! - Optionally PgBouncer in transaction mode: every connection a routed process holds is in a
//!   transaction, so it also holds a server connection from one shared server pool; a client
//!   waits FIFO for one up to `query_wait_timeout`, then its request or run fails.
//!
//! Pure: no I/O, no clock; the same deployment, scenario and seed give the same report.

use super::plan::Plan;
use super::profile::Profile;
use super::units::Millis;
use crate::dify::Component;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// Dify's `SQLALCHEMY_POOL_TIMEOUT` default: a checkout that waits this long fails.
pub const POOL_TIMEOUT_S: f64 = 30.0;
/// A blocking request needs a second connection for about 0.3 s at its start and at its end
/// (measured on Dify 1.16.1, docs/model.md); a worker chat run nests the same way.
pub const NESTED_HOLD_S: f64 = 0.3;
/// A workflow run in the worker holds a connection only for moments: its oldest open transaction
/// was under 0.1 s, and 2–4 connections were busy for 8 runs in flight (measured).
pub const WORKFLOW_RUN_HOLD_S: f64 = 0.1;
/// Share of a worker workflow run's time spent holding a connection (2 of 8 runs busy).
pub const WORKFLOW_RUN_HELD_SHARE: f64 = 0.25;
/// A pool whose waiters saw no checkout granted for this long at the end of a run has stalled.
pub const STALL_S: f64 = 10.0;

/// How a pod hands an accepted request to one of its processes (only processes with a free
/// greenlet or slot can take one; the others leave it in the shared queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// Any process with a free greenlet, at random.
    Random,
    /// The process least busy on its CPU wins the accept race (gunicorn's processes race for
    /// the listening socket; a busy one is not back in its event loop).
    FirstIdle,
    /// The first process takes arrivals until its greenlets are full: a burst drained by one
    /// process, the measured 20/0 split taken to its limit.
    Fill,
}

impl Routing {
    pub const ALL: [Routing; 3] = [Routing::Random, Routing::FirstIdle, Routing::Fill];
}

/// One tier of gevent processes with a pool each.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tier {
    /// Pods (compose: containers); each pod's processes share one queue (api: the listen backlog).
    pub pods: usize,
    pub processes_per_pod: usize,
    /// Greenlets (`SERVER_WORKER_CONNECTIONS`) or Celery `-c` per process.
    pub slots: usize,
    /// `SQLALCHEMY_POOL_SIZE`: connections kept open after use.
    pub pool_size: usize,
    /// `SQLALCHEMY_MAX_OVERFLOW`: opened beyond the pool size, closed on return.
    pub max_overflow: usize,
}

impl Tier {
    fn processes(&self) -> usize {
        self.pods * self.processes_per_pod
    }
}

/// What the simulation runs: the api and the worker as a plan sizes them, and the traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub api: Tier,
    /// All workers read one broker queue, so `pods` only counts them (one process each).
    pub worker: Tier,
    /// The traffic's shares and costs.
    pub profile: Profile,
    /// Seconds a streaming request holds a connection on the api at its start.
    pub streaming_start_hold_s: f64,
    /// PgBouncer between the routed tiers and PostgreSQL, when planned.
    pub pooler: Option<ServerPool>,
}

/// PgBouncer in transaction mode: one server pool shared by the routed tiers' client connections.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServerPool {
    /// The api's connections go through it.
    pub api: bool,
    /// The worker's connections go through it.
    pub worker: bool,
    /// Server connections (the plan's `server_connections`).
    pub connections: usize,
    /// A client waiting this long for a server connection fails (`query_wait_timeout`).
    pub query_wait_timeout_s: f64,
}

impl ServerPool {
    /// The plan's PgBouncer, if it has one.
    pub fn from_plan(plan: &Plan) -> Option<ServerPool> {
        plan.pooler.as_ref().map(|p| ServerPool {
            api: p.routed.contains(&Component::Api),
            worker: p.routed.contains(&Component::Worker),
            connections: p.server_connections as usize,
            query_wait_timeout_s: p.query_wait_timeout_s as f64,
        })
    }
}

impl Deployment {
    /// The api and worker of a plan at its target QPS (replicas, not the HPA maximum).
    pub fn from_plan(plan: &Plan) -> Deployment {
        let tier = |c: Component| {
            let p = plan.components.iter().find(|p| p.component == c);
            p.map_or(Tier { pods: 0, processes_per_pod: 0, slots: 0, pool_size: 0, max_overflow: 0 }, |p| Tier {
                pods: p.replicas as usize,
                processes_per_pod: p.processes_per_pod as usize,
                slots: p.slots_per_process.unwrap_or(1) as usize,
                pool_size: p.pool_size as usize,
                max_overflow: p.max_overflow as usize,
            })
        };
        Deployment {
            api: tier(Component::Api),
            worker: tier(Component::Worker),
            profile: plan.input.profile.clone(),
            streaming_start_hold_s: plan.input.assumptions.streaming_start_hold_seconds,
            pooler: ServerPool::from_plan(plan),
        }
    }
}

/// How requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arrivals {
    /// Poisson arrivals at `qps` for `warmup_s + seconds`; statistics from the end of the warm-up.
    Poisson { qps: f64, seconds: f64, warmup_s: f64 },
    /// `requests` simultaneous arrivals at t = 0 on idle pools, all on the first api pod.
    Burst { requests: u64 },
}

/// One simulated experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub arrivals: Arrivals,
    /// The traffic's mix when it differs from the plan's (a shift to blocking chat).
    pub traffic: Option<Profile>,
    pub routing: Routing,
    pub seed: u64,
    pub pool_timeout_s: f64,
    /// Processor sharing on each gevent process (a core each).
    pub cpu: bool,
    /// How long after the last arrival the simulation lets work finish.
    pub drain_s: f64,
}

impl Scenario {
    /// Poisson arrivals at `factor` × the plan's QPS for `seconds`, after a warm-up of two request
    /// times (at least 10 s): with the durations used here the requests in flight are then within
    /// 3% of their steady state.
    pub fn load(plan: &Plan, factor: f64, seconds: f64) -> Scenario {
        let w = plan.input.profile.request_seconds;
        Scenario {
            arrivals: Arrivals::Poisson { qps: plan.input.qps * factor, seconds, warmup_s: (2.0 * w).max(10.0) },
            traffic: None,
            routing: Routing::Random,
            seed: 1,
            pool_timeout_s: POOL_TIMEOUT_S,
            cpu: true,
            drain_s: default_drain(w),
        }
    }

    /// `requests` arrivals at once on the first api pod, pools cold.
    pub fn burst(plan: &Plan, requests: u64) -> Scenario {
        Scenario { arrivals: Arrivals::Burst { requests }, ..Scenario::load(plan, 1.0, 0.0) }
    }

    /// The plan's QPS with the whole mix shifted to blocking requests to the heaviest app kind
    /// the plan serves: blocking chat when its profile serves chat apps at all, blocking workflow
    /// runs when it serves workflow apps only (a workflow-only plan is sized for those; the
    /// operator who may add chat apps plans with a chat share).
    pub fn shift_to_blocking_chat(plan: &Plan, seconds: f64) -> Scenario {
        let mut profile = plan.input.profile.clone();
        profile.streaming_share = 0.0;
        profile.chat_share = if profile.chat_share > 0.0 { 1.0 } else { 0.0 };
        Scenario { traffic: Some(profile), ..Scenario::load(plan, 1.0, seconds) }
    }

    pub fn routing(self, routing: Routing) -> Scenario {
        Scenario { routing, ..self }
    }

    pub fn seed(self, seed: u64) -> Scenario {
        Scenario { seed, ..self }
    }
}

/// Long enough for the last requests to finish and for a checkout that began waiting at the last
/// arrival to time out.
fn default_drain(w: f64) -> f64 {
    (3.0 * w).max(POOL_TIMEOUT_S + STALL_S)
}

/// What one component (api or worker) saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ComponentReport {
    /// Checkouts after the warm-up, nested ones included.
    pub checkouts: u64,
    /// Of those, the checkouts that waited for a connection.
    pub waited: u64,
    /// P(a checkout waits).
    pub p_wait: f64,
    /// Mean wait of the checkouts that waited, seconds.
    pub mean_wait_s: f64,
    /// Checkouts that timed out (over the whole run).
    pub timeouts: u64,
    /// Requests (api) or runs and tasks (worker) that got a greenlet or slot after the warm-up.
    pub admitted: u64,
    /// Of those, the ones that waited in the listen backlog or the broker queue.
    pub queued: u64,
    /// P(a request waits for a greenlet or slot).
    pub p_queued: f64,
    pub mean_queue_s: f64,
    /// Connections open (idle in the pool or in use) and in use, across all processes at once.
    pub peak_open: u64,
    pub peak_in_use: u64,
    /// The most one process had in use.
    pub peak_in_use_per_process: u64,
    /// Time averages over the measured window.
    pub mean_open: f64,
    pub mean_in_use: f64,
    /// Mean CPU utilisation of a process over the measured window (0 without CPU).
    pub cpu_utilisation: f64,
    /// Planned: processes × (pool_size + max_overflow).
    pub planned_max: u64,
}

/// What PgBouncer's server pool saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolerReport {
    /// Server connections.
    pub connections: u64,
    /// Server checkouts after the warm-up (one per client checkout of a routed process).
    pub checkouts: u64,
    /// Of those, the ones that waited for a server connection.
    pub waited: u64,
    /// P(a client waits for a server connection).
    pub p_wait: f64,
    pub mean_wait_s: f64,
    /// Clients that waited `query_wait_timeout` and failed (over the whole run).
    pub timeouts: u64,
    pub peak_in_use: u64,
    /// Time average over the measured window.
    pub mean_in_use: f64,
}

/// What happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Requests that arrived at the api.
    pub sent: u64,
    pub completed: u64,
    /// Requests that failed: a checkout timed out in the api or in their worker run.
    pub failed: u64,
    /// Still in flight when the simulation ended.
    pub unfinished: u64,
    /// Checkouts that timed out, api and worker (background tasks included).
    pub pool_timeouts: u64,
    /// Waiters left in a pool (PgBouncer's included) that granted nothing for [`STALL_S`] at the end.
    pub stalled: bool,
    /// `pool_timeouts > 0 || stalled`, or PgBouncer timed out a client.
    pub deadlock: bool,
    pub api: ComponentReport,
    pub worker: ComponentReport,
    pub peak_open_total: u64,
    pub peak_in_use_total: u64,
    pub mean_in_use_total: f64,
    pub simulated_s: f64,
    /// PgBouncer's server pool, when the deployment has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooler: Option<PoolerReport>,
}

/// Run the scenario against the deployment.
pub fn simulate(dep: &Deployment, sc: &Scenario) -> Report {
    let mut sim = Sim::new(dep, sc);
    sim.run();
    sim.report()
}

// ---- the machine -------------------------------------------------------------------------------

/// SplitMix64: small, fast, and good enough for arrivals and shares.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
    /// A duration with mean `mean`: half of it fixed, half exponential (a floor and a tail, as
    /// model answers have). The plan's in-flight counts depend on the mean only.
    fn duration(&mut self, mean: f64) -> f64 {
        0.5 * mean + self.exp(0.5 * mean)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comp {
    Api,
    Worker,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Acquire,
    /// A server connection for the client connection just checked out (behind PgBouncer).
    Server,
    Release,
    /// CPU seconds, shared with the process's other greenlets when CPU is on.
    Cpu(f64),
    Sleep(f64),
    /// Queue a streaming run; the task joins it later.
    EnqueueRun(RunKind, f64),
    /// Queue a background Celery task of this length.
    EnqueueTask(f64),
    /// Wait for the run this task queued.
    Join,
}

#[derive(Debug, Clone, Copy)]
enum RunKind {
    Chat,
    Workflow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Queued,
    Running,
    WaitingPool,
    WaitingServer,
    WaitingCpu,
    WaitingJoin,
    Done,
}

struct Task {
    comp: Comp,
    /// The api task this run belongs to (None for background tasks and api tasks).
    parent: Option<usize>,
    /// The run an api task queued.
    run: Option<usize>,
    is_request: bool,
    proc: usize,
    steps: Vec<Step>,
    pc: usize,
    held: u32,
    /// Server connections held (behind PgBouncer; one per client connection once granted).
    server_held: u32,
    state: State,
    since: f64,
    token: u64,
    failed: bool,
}

/// PgBouncer's server pool and what it saw.
struct Server {
    routed: [bool; 2],
    max: usize,
    timeout_s: f64,
    in_use: usize,
    waiters: VecDeque<(usize, u64)>,
    last_grant: f64,
    last: f64,
    checkouts: u64,
    waited: u64,
    wait_s: f64,
    timeouts: u64,
    peak_in_use: usize,
    in_use_area: f64,
}

struct Pool {
    max: usize,
    keep: usize,
    in_use: usize,
    idle: usize,
    waiters: VecDeque<(usize, u64)>,
    last_grant: f64,
}

/// Processor sharing with virtual time: each of n jobs gets 1/n of the core, so jobs finish in
/// the order of their virtual finish times.
struct Ps {
    v: f64,
    last: f64,
    jobs: BinaryHeap<Job>,
    version: u64,
    busy_s: f64,
}

struct Job(f64, usize);
impl PartialEq for Job {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Job {
    // Min-heap on the virtual finish time.
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

struct Proc {
    comp: Comp,
    pod: usize,
    free: usize,
    pool: Pool,
    ps: Ps,
    peak_in_use: usize,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Arrival,
    Resume(usize),
    CpuDone(usize, u64),
    Timeout(usize, u64),
}

struct Event {
    t: f64,
    seq: u64,
    ev: Ev,
}
impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    fn cmp(&self, o: &Self) -> Ordering {
        o.t.total_cmp(&self.t).then(o.seq.cmp(&self.seq))
    }
}

/// Per-component counters.
#[derive(Default)]
struct Stats {
    checkouts: u64,
    waited: u64,
    wait_s: f64,
    timeouts: u64,
    admitted: u64,
    queued: u64,
    queue_s: f64,
    open: u64,
    in_use: u64,
    peak_open: u64,
    peak_in_use: u64,
    open_area: f64,
    in_use_area: f64,
    last: f64,
}

struct Sim<'a> {
    dep: &'a Deployment,
    traffic: &'a Profile,
    sc: &'a Scenario,
    rng: Rng,
    now: f64,
    seq: u64,
    events: BinaryHeap<Event>,
    tasks: Vec<Task>,
    procs: Vec<Proc>,
    n_api: usize,
    backlogs: Vec<VecDeque<usize>>,
    broker: VecDeque<usize>,
    stats: [Stats; 2],
    warmup: f64,
    arrivals_end: f64,
    /// End of the window the time averages cover: the last arrival (a burst: the end).
    measure_end: f64,
    horizon: f64,
    sent: u64,
    completed: u64,
    failed: u64,
    total_open: u64,
    total_in_use: u64,
    peak_open_total: u64,
    peak_in_use_total: u64,
    nested_s: f64,
    server: Option<Server>,
}

fn idx(c: Comp) -> usize {
    match c {
        Comp::Api => 0,
        Comp::Worker => 1,
    }
}

impl<'a> Sim<'a> {
    fn new(dep: &'a Deployment, sc: &'a Scenario) -> Sim<'a> {
        let traffic = sc.traffic.as_ref().unwrap_or(&dep.profile);
        let mut procs = Vec::new();
        for (comp, tier) in [(Comp::Api, &dep.api), (Comp::Worker, &dep.worker)] {
            for i in 0..tier.processes() {
                procs.push(Proc {
                    comp,
                    pod: i / tier.processes_per_pod.max(1),
                    free: tier.slots,
                    pool: Pool {
                        max: tier.pool_size + tier.max_overflow,
                        keep: tier.pool_size,
                        in_use: 0,
                        idle: 0,
                        waiters: VecDeque::new(),
                        last_grant: 0.0,
                    },
                    ps: Ps { v: 0.0, last: 0.0, jobs: BinaryHeap::new(), version: 0, busy_s: 0.0 },
                    peak_in_use: 0,
                });
            }
        }
        let (warmup, arrivals_end) = match sc.arrivals {
            Arrivals::Poisson { seconds, warmup_s, .. } => (warmup_s, warmup_s + seconds),
            Arrivals::Burst { .. } => (0.0, 0.0),
        };
        // The second connection at a request's start and end: 0.3 s as measured, less where the
        // profile's mean connections per request say the request is short (benchmark).
        let w = traffic.request_seconds;
        let nested_s = NESTED_HOLD_S.min((traffic.connections_mean - 1.0).max(0.0) * w / 2.0);
        Sim {
            dep,
            traffic,
            sc,
            rng: Rng(sc.seed ^ 0x5DEE_CE66_D1CE_5EED),
            now: 0.0,
            seq: 0,
            events: BinaryHeap::new(),
            tasks: Vec::new(),
            procs,
            n_api: dep.api.processes(),
            backlogs: vec![VecDeque::new(); dep.api.pods],
            broker: VecDeque::new(),
            stats: [Stats::default(), Stats::default()],
            warmup,
            arrivals_end,
            measure_end: match sc.arrivals {
                Arrivals::Poisson { .. } => arrivals_end,
                Arrivals::Burst { .. } => f64::INFINITY,
            },
            horizon: arrivals_end + sc.drain_s,
            sent: 0,
            completed: 0,
            failed: 0,
            total_open: 0,
            total_in_use: 0,
            peak_open_total: 0,
            peak_in_use_total: 0,
            nested_s,
            server: dep.pooler.map(|p| Server {
                routed: [p.api, p.worker],
                max: p.connections,
                timeout_s: p.query_wait_timeout_s,
                in_use: 0,
                waiters: VecDeque::new(),
                last_grant: 0.0,
                last: 0.0,
                checkouts: 0,
                waited: 0,
                wait_s: 0.0,
                timeouts: 0,
                peak_in_use: 0,
                in_use_area: 0.0,
            }),
        }
    }

    fn schedule(&mut self, t: f64, ev: Ev) {
        self.seq += 1;
        self.events.push(Event { t, seq: self.seq, ev });
    }

    fn run(&mut self) {
        if self.n_api == 0 {
            return;
        }
        match self.sc.arrivals {
            Arrivals::Poisson { qps, .. } => {
                if qps > 0.0 {
                    let t = self.rng.exp(1.0 / qps);
                    self.schedule(t, Ev::Arrival);
                }
            }
            Arrivals::Burst { requests } => {
                for _ in 0..requests {
                    self.arrive(Some(0));
                }
            }
        }
        while let Some(e) = self.events.pop() {
            if e.t > self.horizon {
                break;
            }
            self.now = e.t;
            match e.ev {
                Ev::Arrival => {
                    if let Arrivals::Poisson { qps, .. } = self.sc.arrivals {
                        self.arrive(None);
                        let t = self.now + self.rng.exp(1.0 / qps);
                        if t < self.arrivals_end {
                            self.schedule(t, Ev::Arrival);
                        }
                    }
                }
                Ev::Resume(t) => self.step(t),
                Ev::CpuDone(p, version) => self.cpu_done(p, version),
                Ev::Timeout(t, token) => {
                    if self.tasks[t].state == State::WaitingPool && self.tasks[t].token == token {
                        self.stats[idx(self.tasks[t].comp)].timeouts += 1;
                        self.fail(t);
                    } else if self.tasks[t].state == State::WaitingServer && self.tasks[t].token == token {
                        if let Some(s) = self.server.as_mut() {
                            s.timeouts += 1;
                        }
                        self.fail(t);
                    }
                }
            }
        }
        self.now = self.now.max(self.arrivals_end);
    }

    // ---- building requests -------------------------------------------------------------------

    /// Split `len` seconds of a phase into its share of `cpu` (spread over `total`) and the rest.
    fn work(steps: &mut Vec<Step>, len: f64, cpu: f64, total: f64) {
        let c = if total > 0.0 { cpu * len / total } else { 0.0 };
        steps.push(Step::Cpu(c));
        steps.push(Step::Sleep((len - c).max(0.0)));
    }

    /// A request or run holding one connection throughout and a second for about
    /// [`NESTED_HOLD_S`] at its start and its end; with `third`, a third short one nested in the
    /// start (chat: the pool must cover about 2 × admitted, measured). The first connection is
    /// taken at once, the nested ones after a random lead-in, so simultaneous starts interleave as
    /// gevent's greenlets do rather than in lock-step.
    fn nested(&mut self, steps: &mut Vec<Step>, d: f64, cpu: f64, third: bool) {
        let n = self.nested_s.min(d / 4.0);
        let lead = self.rng.exp(n / 2.0).min(d / 4.0);
        steps.push(Step::Acquire);
        Self::work(steps, lead, cpu, d);
        steps.push(Step::Acquire);
        if third {
            let gap = self.rng.exp(n / 2.0).min(d / 8.0);
            Self::work(steps, gap, cpu, d);
            steps.push(Step::Acquire);
            Self::work(steps, n / 2.0, cpu, d);
            steps.push(Step::Release);
        } else {
            Self::work(steps, n, cpu, d);
        }
        steps.push(Step::Release);
        Self::work(steps, (d - lead - 2.0 * n).max(0.0), cpu, d);
        steps.push(Step::Acquire);
        Self::work(steps, n, cpu, d);
        steps.push(Step::Release);
        steps.push(Step::Release);
    }

    fn arrive(&mut self, pod: Option<usize>) {
        let p = self.traffic;
        self.sent += 1;
        let d = self.rng.duration(p.request_seconds);
        let mut steps = Vec::with_capacity(16);
        let tasks = p.celery_tasks.floor() as usize + usize::from(self.rng.uniform() < p.celery_tasks.fract());
        if p.celery_task_seconds > 0.0 && self.dep.worker.processes() > 0 {
            for _ in 0..tasks {
                let len = self.rng.duration(p.celery_task_seconds);
                steps.push(Step::EnqueueTask(len));
            }
        }
        let streaming = self.rng.uniform() < p.streaming_share;
        let chat = self.rng.uniform() < p.chat_share;
        if streaming && self.dep.worker.processes() > 0 {
            let kind = if chat { RunKind::Chat } else { RunKind::Workflow };
            steps.push(Step::EnqueueRun(kind, d));
            let h = self.dep.streaming_start_hold_s.min(d);
            let cpu = p.api_cpu_ms_streaming.seconds();
            steps.push(Step::Acquire);
            Self::work(&mut steps, h, cpu, d);
            steps.push(Step::Release);
            Self::work(&mut steps, d - h, cpu, d);
            steps.push(Step::Join);
        } else {
            // A blocking request's api CPU grows with its wait (the worker thread polls while it
            // waits): the fixed part + the measured CPU per second of this request's time, as
            // the model charges it on average (`Profile::api_cpu_ms_blocking_total`).
            let cpu = p.api_cpu_ms_blocking + Millis(p.api_cpu_ms_per_wait_second * d);
            self.nested(&mut steps, d, cpu.seconds(), chat);
        }
        let t = self.new_task(Comp::Api, steps, None, true);
        let pod = pod.unwrap_or_else(|| self.rng.below(self.dep.api.pods));
        let ppp = self.dep.api.processes_per_pod;
        match self.pick(pod * ppp..(pod + 1) * ppp, self.sc.routing) {
            Some(proc) => self.start(t, proc),
            None => self.backlogs[pod].push_back(t),
        }
    }

    fn new_task(&mut self, comp: Comp, mut steps: Vec<Step>, parent: Option<usize>, is_request: bool) -> usize {
        if self.server.as_ref().is_some_and(|s| s.routed[idx(comp)]) {
            // Behind PgBouncer every connection in use is in a transaction: it needs a server
            // connection as soon as it is checked out, until it is returned.
            steps = steps
                .into_iter()
                .flat_map(|s| match s {
                    Step::Acquire => vec![Step::Acquire, Step::Server],
                    s => vec![s],
                })
                .collect();
        }
        self.tasks.push(Task {
            comp,
            parent,
            run: None,
            is_request,
            proc: usize::MAX,
            steps,
            pc: 0,
            held: 0,
            server_held: 0,
            state: State::Queued,
            since: self.now,
            token: 0,
            failed: false,
        });
        self.tasks.len() - 1
    }

    fn run_steps(&mut self, kind: RunKind, d: f64) -> Vec<Step> {
        let cpu = self.traffic.worker_cpu_ms_streaming.seconds();
        let mut steps = Vec::with_capacity(16);
        match kind {
            RunKind::Chat => self.nested(&mut steps, d, cpu, true),
            RunKind::Workflow => {
                let holds = ((d * WORKFLOW_RUN_HELD_SHARE / WORKFLOW_RUN_HOLD_S).round() as usize).clamp(2, 50);
                let hold = (d * WORKFLOW_RUN_HELD_SHARE / holds as f64).min(d / (2 * holds) as f64);
                let gap = d / holds as f64 - hold;
                for _ in 0..holds {
                    steps.push(Step::Acquire);
                    Self::work(&mut steps, hold, cpu, d);
                    steps.push(Step::Release);
                    Self::work(&mut steps, gap, cpu, d);
                }
            }
        }
        steps
    }

    /// Every worker reads the one broker queue and fetches when it has a free slot; which of the
    /// free workers gets a run is random (routing policies apply to the api's pods only).
    fn enqueue_worker(&mut self, t: usize) {
        let n = self.procs.len();
        match self.pick(self.n_api..n, Routing::Random) {
            Some(proc) => self.start(t, proc),
            None => self.broker.push_back(t),
        }
    }

    /// A process with a free slot in `range`, by `routing`.
    fn pick(&mut self, range: std::ops::Range<usize>, routing: Routing) -> Option<usize> {
        if routing == Routing::Random {
            // A few random draws find a free process unless nearly all are full.
            for _ in 0..8 {
                let i = range.start + self.rng.below(range.len());
                if self.procs[i].free > 0 {
                    return Some(i);
                }
            }
        }
        let mut best: Option<(usize, (usize, usize))> = None;
        let mut ties = 0;
        for i in range {
            let pr = &self.procs[i];
            if pr.free == 0 {
                continue;
            }
            let key = match routing {
                Routing::Fill => return Some(i),
                Routing::Random => (0, 0),
                Routing::FirstIdle => (pr.ps.jobs.len(), usize::MAX - pr.free),
            };
            match best {
                Some((_, k)) if key > k => {}
                Some((_, k)) if key == k => {
                    ties += 1;
                    if self.rng.below(ties + 1) == 0 {
                        best = Some((i, key));
                    }
                }
                _ => {
                    best = Some((i, key));
                    ties = 0;
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// Give task `t` a greenlet or slot on `proc` and run it.
    fn start(&mut self, t: usize, proc: usize) {
        self.procs[proc].free -= 1;
        let comp = self.tasks[t].comp;
        if self.now >= self.warmup {
            let s = &mut self.stats[idx(comp)];
            s.admitted += 1;
            let waited = self.now - self.tasks[t].since;
            if waited > 0.0 {
                s.queued += 1;
                s.queue_s += waited;
            }
        }
        let task = &mut self.tasks[t];
        task.proc = proc;
        task.state = State::Running;
        self.step(t);
    }

    // ---- running ------------------------------------------------------------------------------

    fn step(&mut self, t: usize) {
        loop {
            let task = &self.tasks[t];
            if task.state == State::Done {
                return;
            }
            let proc = task.proc;
            let Some(&step) = task.steps.get(task.pc) else {
                self.finish(t);
                return;
            };
            self.tasks[t].pc += 1;
            self.tasks[t].state = State::Running;
            match step {
                Step::Acquire => {
                    if !self.checkout(t, proc) {
                        return;
                    }
                }
                Step::Server => {
                    if !self.server_checkout(t) {
                        return;
                    }
                }
                Step::Release => {
                    if self.tasks[t].server_held > 0 {
                        self.tasks[t].server_held -= 1;
                        self.server_checkin();
                    }
                    self.tasks[t].held -= 1;
                    self.checkin(proc);
                }
                Step::Cpu(s) if s > 0.0 => {
                    if self.sc.cpu {
                        self.tasks[t].state = State::WaitingCpu;
                        self.cpu_add(proc, t, s);
                    } else {
                        self.schedule(self.now + s, Ev::Resume(t));
                    }
                    return;
                }
                Step::Sleep(s) if s > 0.0 => {
                    self.schedule(self.now + s, Ev::Resume(t));
                    return;
                }
                Step::Cpu(_) | Step::Sleep(_) => {}
                Step::EnqueueRun(kind, d) => {
                    let steps = self.run_steps(kind, d);
                    let r = self.new_task(Comp::Worker, steps, Some(t), false);
                    self.tasks[t].run = Some(r);
                    self.enqueue_worker(r);
                }
                Step::EnqueueTask(len) => {
                    let cpu = self.traffic.celery_task_cpu_ms.seconds();
                    let mut steps = vec![Step::Acquire];
                    Self::work(&mut steps, len, cpu, len);
                    steps.push(Step::Release);
                    let r = self.new_task(Comp::Worker, steps, None, false);
                    self.enqueue_worker(r);
                }
                Step::Join => {
                    if let Some(r) = self.tasks[t].run
                        && self.tasks[r].state != State::Done
                    {
                        self.tasks[t].state = State::WaitingJoin;
                        return;
                    }
                }
            }
        }
    }

    /// Count a change of connections in use (`du`) and open (`dopen`) of a component.
    fn account(&mut self, comp: Comp, proc: usize, du: i64, dopen: i64) {
        let now = self.now;
        let measuring = now >= self.warmup;
        let s = &mut self.stats[idx(comp)];
        if measuring {
            let from = s.last.max(self.warmup);
            let to = now.min(self.measure_end);
            if to > from {
                s.open_area += s.open as f64 * (to - from);
                s.in_use_area += s.in_use as f64 * (to - from);
            }
        }
        s.last = now;
        s.in_use = s.in_use.wrapping_add_signed(du);
        s.open = s.open.wrapping_add_signed(dopen);
        self.total_in_use = self.total_in_use.wrapping_add_signed(du);
        self.total_open = self.total_open.wrapping_add_signed(dopen);
        if measuring {
            s.peak_in_use = s.peak_in_use.max(s.in_use);
            s.peak_open = s.peak_open.max(s.open);
            self.peak_in_use_total = self.peak_in_use_total.max(self.total_in_use);
            self.peak_open_total = self.peak_open_total.max(self.total_open);
            let pr = &mut self.procs[proc];
            pr.peak_in_use = pr.peak_in_use.max(pr.pool.in_use);
        }
    }

    fn checkout(&mut self, t: usize, proc: usize) -> bool {
        let comp = self.procs[proc].comp;
        if self.now >= self.warmup {
            self.stats[idx(comp)].checkouts += 1;
        }
        let pool = &mut self.procs[proc].pool;
        let opened = if pool.idle > 0 {
            pool.idle -= 1;
            0
        } else if pool.in_use + pool.idle < pool.max {
            1
        } else {
            self.tasks[t].token += 1;
            let token = self.tasks[t].token;
            pool.waiters.push_back((t, token));
            self.tasks[t].state = State::WaitingPool;
            self.tasks[t].since = self.now;
            self.schedule(self.now + self.sc.pool_timeout_s, Ev::Timeout(t, token));
            return false;
        };
        pool.in_use += 1;
        pool.last_grant = self.now;
        self.tasks[t].held += 1;
        self.account(comp, proc, 1, opened);
        true
    }

    /// Return a connection: to the first live waiter, else to the pool (kept up to the pool size).
    fn checkin(&mut self, proc: usize) {
        let comp = self.procs[proc].comp;
        while let Some((w, token)) = self.procs[proc].pool.waiters.pop_front() {
            if self.tasks[w].state == State::WaitingPool && self.tasks[w].token == token {
                self.procs[proc].pool.last_grant = self.now;
                let task = &mut self.tasks[w];
                task.token += 1;
                task.held += 1;
                task.state = State::Running;
                let waited = self.now - task.since;
                if self.now >= self.warmup {
                    let s = &mut self.stats[idx(comp)];
                    s.waited += 1;
                    s.wait_s += waited;
                }
                self.schedule(self.now, Ev::Resume(w));
                return;
            }
        }
        let pool = &mut self.procs[proc].pool;
        pool.in_use -= 1;
        let closed = if pool.idle < pool.keep {
            pool.idle += 1;
            0
        } else {
            -1
        };
        self.account(comp, proc, -1, closed);
    }

    /// Change the server connections in use by `du`, keeping the time integral.
    fn server_account(&mut self, du: isize) {
        let (now, warmup, end) = (self.now, self.warmup, self.measure_end);
        let Some(s) = self.server.as_mut() else { return };
        let (from, to) = (s.last.max(warmup), now.min(end));
        if to > from {
            s.in_use_area += s.in_use as f64 * (to - from);
        }
        s.last = now;
        s.in_use = s.in_use.wrapping_add_signed(du);
        if now >= warmup {
            s.peak_in_use = s.peak_in_use.max(s.in_use);
        }
    }

    /// A server connection for task `t`, or a place in PgBouncer's FIFO queue.
    fn server_checkout(&mut self, t: usize) -> bool {
        let (now, warmup) = (self.now, self.warmup);
        let Some(s) = self.server.as_mut() else { return true };
        if now >= warmup {
            s.checkouts += 1;
        }
        if s.in_use >= s.max {
            let task = &mut self.tasks[t];
            task.token += 1;
            task.state = State::WaitingServer;
            task.since = now;
            let token = task.token;
            s.waiters.push_back((t, token));
            let at = now + s.timeout_s;
            self.schedule(at, Ev::Timeout(t, token));
            return false;
        }
        s.last_grant = now;
        self.tasks[t].server_held += 1;
        self.server_account(1);
        true
    }

    /// Return a server connection: to the first live waiter, else to the pool.
    fn server_checkin(&mut self) {
        let (now, warmup) = (self.now, self.warmup);
        let Some(s) = self.server.as_mut() else { return };
        let mut granted = None;
        while let Some((w, token)) = s.waiters.pop_front() {
            let task = &mut self.tasks[w];
            if task.state == State::WaitingServer && task.token == token {
                s.last_grant = now;
                task.token += 1;
                task.server_held += 1;
                task.state = State::Running;
                if now >= warmup {
                    s.waited += 1;
                    s.wait_s += now - task.since;
                }
                granted = Some(w);
                break;
            }
        }
        match granted {
            Some(w) => self.schedule(now, Ev::Resume(w)),
            None => self.server_account(-1),
        }
    }

    fn cpu_advance(&mut self, proc: usize) {
        let ps = &mut self.procs[proc].ps;
        let n = ps.jobs.len();
        if n > 0 {
            ps.v += (self.now - ps.last) / n as f64;
            ps.busy_s += (self.now.min(self.measure_end) - ps.last.max(self.warmup)).max(0.0);
        }
        ps.last = self.now;
    }

    fn cpu_reschedule(&mut self, proc: usize) {
        let ps = &mut self.procs[proc].ps;
        ps.version += 1;
        let version = ps.version;
        if let Some(j) = ps.jobs.peek() {
            let at = self.now + (j.0 - ps.v).max(0.0) * ps.jobs.len() as f64;
            self.schedule(at, Ev::CpuDone(proc, version));
        }
    }

    fn cpu_add(&mut self, proc: usize, t: usize, s: f64) {
        self.cpu_advance(proc);
        let ps = &mut self.procs[proc].ps;
        ps.jobs.push(Job(ps.v + s, t));
        self.cpu_reschedule(proc);
    }

    fn cpu_done(&mut self, proc: usize, version: u64) {
        if self.procs[proc].ps.version != version {
            return;
        }
        self.cpu_advance(proc);
        let mut ready = Vec::new();
        let ps = &mut self.procs[proc].ps;
        // Jobs with less than a nanosecond of CPU left are done (the float error of the clock).
        let n = ps.jobs.len() as f64;
        while let Some(j) = ps.jobs.peek() {
            if (j.0 - ps.v) * n <= 1e-9 {
                ready.push(ps.jobs.pop().map_or(0, |j| j.1));
            } else {
                break;
            }
        }
        self.cpu_reschedule(proc);
        for t in ready {
            self.step(t);
        }
    }

    /// A checkout timed out: the task fails and lets go of what it holds.
    fn fail(&mut self, t: usize) {
        self.tasks[t].failed = true;
        self.tasks[t].token += 1;
        self.finish(t);
    }

    fn finish(&mut self, t: usize) {
        let proc = self.tasks[t].proc;
        let held = self.tasks[t].held;
        let server_held = self.tasks[t].server_held;
        self.tasks[t].held = 0;
        self.tasks[t].server_held = 0;
        self.tasks[t].state = State::Done;
        self.tasks[t].steps = Vec::new();
        for _ in 0..server_held {
            self.server_checkin();
        }
        for _ in 0..held {
            self.checkin(proc);
        }
        let task = &self.tasks[t];
        let (comp, is_request, parent, failed) = (task.comp, task.is_request, task.parent, task.failed);
        if is_request {
            let run_failed = task.run.is_some_and(|r| self.tasks[r].failed);
            if failed || run_failed {
                self.failed += 1;
            } else {
                self.completed += 1;
            }
        }
        if let Some(parent) = parent {
            if failed {
                // The stream ends with an error; the api greenlet returns.
                self.tasks[parent].failed = true;
            }
            if self.tasks[parent].state == State::WaitingJoin {
                self.schedule(self.now, Ev::Resume(parent));
            }
        }
        // The freed greenlet or slot takes the next request in its queue.
        self.procs[proc].free += 1;
        let next = match comp {
            Comp::Api => self.backlogs[self.procs[proc].pod].pop_front(),
            Comp::Worker => self.broker.pop_front(),
        };
        if let Some(n) = next {
            self.start(n, proc);
        }
    }

    fn report(&mut self) -> Report {
        let end = self.now;
        // Close the time integrals.
        for c in [Comp::Api, Comp::Worker] {
            let proc = if c == Comp::Api { 0 } else { self.n_api };
            if proc < self.procs.len() {
                self.account(c, proc, 0, 0);
            }
        }
        for p in 0..self.procs.len() {
            self.cpu_advance(p);
        }
        self.server_account(0);
        let window = (self.measure_end.min(end) - self.warmup).max(0.0);
        let live = |state: State, waiters: &VecDeque<(usize, u64)>| {
            waiters.iter().any(|&(w, token)| self.tasks[w].state == state && self.tasks[w].token == token)
        };
        let stalled =
            self.procs.iter().any(|p| end - p.pool.last_grant >= STALL_S && live(State::WaitingPool, &p.pool.waiters))
                || self
                    .server
                    .as_ref()
                    .is_some_and(|s| end - s.last_grant >= STALL_S && live(State::WaitingServer, &s.waiters));
        let pooler = self.server.as_ref().map(|s| PoolerReport {
            connections: s.max as u64,
            checkouts: s.checkouts,
            waited: s.waited,
            p_wait: ratio(s.waited as f64, s.checkouts as f64),
            mean_wait_s: ratio(s.wait_s, s.waited as f64),
            timeouts: s.timeouts,
            peak_in_use: s.peak_in_use as u64,
            mean_in_use: ratio(s.in_use_area, window),
        });
        let unfinished = self.tasks.iter().filter(|t| t.is_request && t.state != State::Done).count() as u64;
        let mut comps = [ComponentReport::default(), ComponentReport::default()];
        for (i, (c, tier)) in [(Comp::Api, &self.dep.api), (Comp::Worker, &self.dep.worker)].into_iter().enumerate() {
            let s = &self.stats[i];
            let procs: Vec<&Proc> = self.procs.iter().filter(|p| p.comp == c).collect();
            let busy: f64 = procs.iter().map(|p| p.ps.busy_s).sum();
            comps[i] = ComponentReport {
                checkouts: s.checkouts,
                waited: s.waited,
                p_wait: ratio(s.waited as f64, s.checkouts as f64),
                mean_wait_s: ratio(s.wait_s, s.waited as f64),
                timeouts: s.timeouts,
                admitted: s.admitted,
                queued: s.queued,
                p_queued: ratio(s.queued as f64, s.admitted as f64),
                mean_queue_s: ratio(s.queue_s, s.queued as f64),
                peak_open: s.peak_open,
                peak_in_use: s.peak_in_use,
                peak_in_use_per_process: procs.iter().map(|p| p.peak_in_use as u64).max().unwrap_or(0),
                mean_open: ratio(s.open_area, window),
                mean_in_use: ratio(s.in_use_area, window),
                cpu_utilisation: ratio(busy, window * procs.len() as f64),
                planned_max: (tier.processes() * (tier.pool_size + tier.max_overflow)) as u64,
            };
        }
        let [api, worker] = comps;
        let pool_timeouts = api.timeouts + worker.timeouts;
        let pooler_timeouts = pooler.as_ref().map_or(0, |p| p.timeouts);
        Report {
            sent: self.sent,
            completed: self.completed,
            failed: self.failed,
            unfinished,
            pool_timeouts,
            stalled,
            deadlock: pool_timeouts > 0 || pooler_timeouts > 0 || stalled,
            mean_in_use_total: api.mean_in_use + worker.mean_in_use,
            api,
            worker,
            peak_open_total: self.peak_open_total,
            peak_in_use_total: self.peak_in_use_total,
            simulated_s: end,
            pooler,
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workflow or chat app's traffic with `request_seconds`, all blocking unless `streaming`.
    fn traffic(request_seconds: f64, streaming: f64, chat: f64) -> Profile {
        let mut p = Profile::builtin("workflow").expect("built-in profile");
        p.request_seconds = request_seconds;
        p.streaming_share = streaming;
        p.chat_share = chat;
        p.celery_tasks = 0.0;
        p
    }

    fn tier(pods: usize, processes: usize, slots: usize, pool: usize) -> Tier {
        Tier { pods, processes_per_pod: processes, slots, pool_size: pool, max_overflow: 0 }
    }

    fn one_process(greenlets: usize, pool: usize, profile: Profile) -> Deployment {
        Deployment {
            api: tier(1, 1, greenlets, pool),
            worker: tier(1, 1, 4, 8),
            profile,
            streaming_start_hold_s: 0.7,
            pooler: None,
        }
    }

    fn burst(requests: u64, seed: u64) -> Scenario {
        Scenario {
            arrivals: Arrivals::Burst { requests },
            traffic: None,
            routing: Routing::Random,
            seed,
            pool_timeout_s: POOL_TIMEOUT_S,
            cpu: true,
            drain_s: 200.0,
        }
    }

    /// Measured: 10 concurrent workflow requests in one process, pool 10+0, completed 3 of 30 then
    /// none (QueuePool timeouts); pool 11+0 completed 30 of 30.
    #[test]
    fn a_pool_of_n_deadlocks_under_n_nested_holders_and_n_plus_one_does_not() {
        for seed in 1..=5 {
            let tight = simulate(&one_process(10, 10, traffic(2.0, 0.0, 0.0)), &burst(30, seed));
            assert!(tight.deadlock && tight.api.timeouts > 0, "10+0 under 10 greenlets: {tight:?}");
            assert!(tight.completed < 30, "{tight:?}");
            let enough = simulate(&one_process(10, 11, traffic(2.0, 0.0, 0.0)), &burst(30, seed));
            assert!(!enough.deadlock, "11+0 under 10 greenlets: {enough:?}");
            assert_eq!((enough.completed, enough.failed, enough.unfinished), (30, 0, 0));
            assert!(enough.api.peak_in_use <= 11 && enough.api.waited > 0, "{:?}", enough.api);
        }
    }

    /// Measured for chat apps: 10+0 deadlocked, 11+0 timed out, 20+0 ran clean with 10 concurrent.
    #[test]
    fn blocking_chat_needs_about_twice_the_greenlets() {
        for seed in 1..=5 {
            let chat = || traffic(2.0, 0.0, 1.0);
            for pool in [10, 11] {
                let r = simulate(&one_process(10, pool, chat()), &burst(30, seed));
                assert!(r.deadlock, "chat, pool {pool}+0 under 10 greenlets: {r:?}");
            }
            let r = simulate(&one_process(10, 20, chat()), &burst(30, seed));
            assert!(!r.deadlock && r.completed == 30, "chat, 20+0: {r:?}");
        }
    }

    /// Measured: at twice the planned streaming-chat load a worker with `-c 40` and pool 31+13
    /// deadlocked (212 QueuePool timeouts); with 80+0 the same overload only queued.
    #[test]
    fn a_worker_chat_pool_of_c_plus_ten_percent_deadlocks_at_twice_the_load_and_two_c_queues() {
        let run = |pool: usize| {
            let dep = Deployment {
                api: tier(1, 1, 1000, 2000),
                worker: Tier { pods: 1, processes_per_pod: 1, slots: 40, pool_size: pool, max_overflow: 0 },
                profile: traffic(8.0, 1.0, 1.0),
                streaming_start_hold_s: 0.7,
                pooler: None,
            };
            let sc = Scenario {
                arrivals: Arrivals::Poisson { qps: 5.0, seconds: 90.0, warmup_s: 0.0 },
                drain_s: 100.0,
                ..burst(0, 3)
            };
            simulate(&dep, &sc)
        };
        let tight = run(44);
        assert!(tight.deadlock && tight.worker.timeouts > 0 && tight.failed > 0, "-c 40, pool 44: {tight:?}");
        let safe = run(80);
        assert!(!safe.deadlock && safe.failed == 0, "-c 40, pool 80: {safe:?}");
        assert!(
            safe.worker.p_queued > 0.0 && safe.worker.peak_in_use > 44,
            "it queued and used more: {:?}",
            safe.worker
        );
    }

    fn behind_pgbouncer(dep: Deployment, server: usize) -> Deployment {
        let pooler = ServerPool { api: true, worker: true, connections: server, query_wait_timeout_s: 30.0 };
        Deployment { pooler: Some(pooler), ..dep }
    }

    /// Measured through PgBouncer: 10 concurrent blocking workflow requests on a server pool of 5
    /// completed 0 of 30, on 15 all. The bound for 10 greenlets that each hold one connection
    /// while asking for a second is 10 × 1 + 1: one below it deadlocks, at it nothing does. The
    /// process's own pool (20) is never the limit here.
    #[test]
    fn behind_pgbouncer_a_server_pool_one_below_the_bound_deadlocks_and_the_bound_does_not() {
        let workflow = || one_process(10, 20, traffic(2.0, 0.0, 0.0));
        for seed in 1..=5 {
            for (server, ok) in [(5, false), (10, false), (11, true), (15, true)] {
                let r = simulate(&behind_pgbouncer(workflow(), server), &burst(30, seed));
                let p = r.pooler.clone().expect("a server pool");
                assert_eq!(r.api.timeouts, 0, "server {server}: the client pool never waits out: {r:?}");
                if ok {
                    assert!(!r.deadlock && r.completed == 30, "server {server}: {r:?}");
                    assert!(p.peak_in_use <= server as u64 && p.waited > 0, "server {server}: {p:?}");
                } else {
                    assert!(r.deadlock && p.timeouts > 0 && r.completed < 30, "server {server}: {r:?}");
                }
            }
            // The measurement completed none; here timeouts free the pool now and then.
            let five = simulate(&behind_pgbouncer(workflow(), 5), &burst(30, seed));
            assert!(five.completed <= 10, "server 5: {five:?}");
            // Chat nests twice (bound 10 × 2 + 1); as with the process's own pool, the greenlets
            // + 1 that serve workflow deadlock it.
            let chat = || one_process(10, 40, traffic(2.0, 0.0, 1.0));
            let r = simulate(&behind_pgbouncer(chat(), 11), &burst(30, seed));
            assert!(r.deadlock && r.completed < 30, "chat, server 11: {r:?}");
            let r = simulate(&behind_pgbouncer(chat(), 21), &burst(30, seed));
            assert!(!r.deadlock && r.completed == 30, "chat, server 21: {r:?}");
        }
    }

    /// A server pool that is never short changes nothing the processes see, and every client
    /// connection in use holds one server connection.
    #[test]
    fn an_ample_server_pool_is_transparent() {
        let dep = Deployment { api: tier(2, 2, 10, 20), ..one_process(10, 20, traffic(2.0, 0.5, 0.5)) };
        let sc = Scenario { arrivals: Arrivals::Poisson { qps: 10.0, seconds: 60.0, warmup_s: 10.0 }, ..burst(0, 7) };
        let direct = simulate(&dep, &sc);
        let pooled = simulate(&behind_pgbouncer(dep, 10_000), &sc);
        let p = pooled.pooler.clone().expect("a server pool");
        assert_eq!(Report { pooler: None, ..pooled.clone() }, direct);
        assert!(p.checkouts == direct.api.checkouts + direct.worker.checkouts && p.waited == 0, "{p:?}");
        assert!((p.mean_in_use - direct.mean_in_use_total).abs() < 1e-6, "{p:?} vs {direct:?}");
        assert_eq!(p.peak_in_use, direct.peak_in_use_total);
    }

    /// Requests beyond the greenlets wait in the backlog holding no connection.
    #[test]
    fn the_backlog_holds_no_connection() {
        let r = simulate(&one_process(2, 3, traffic(1.0, 0.0, 0.0)), &burst(20, 1));
        assert_eq!((r.completed, r.failed), (20, 0), "{r:?}");
        assert!(r.api.p_queued > 0.8 && r.api.peak_in_use <= 3 && r.api.peak_in_use_per_process <= 3, "{:?}", r.api);
    }

    #[test]
    fn the_same_seed_gives_the_same_report() {
        let dep = Deployment { api: tier(2, 2, 10, 20), ..one_process(10, 20, traffic(2.0, 0.5, 0.5)) };
        let sc = Scenario { arrivals: Arrivals::Poisson { qps: 10.0, seconds: 30.0, warmup_s: 10.0 }, ..burst(0, 7) };
        assert_eq!(simulate(&dep, &sc), simulate(&dep, &sc));
        assert_ne!(simulate(&dep, &sc), simulate(&dep, &sc.clone().seed(8)));
    }

    /// Little's law: at a light load the time-average in use is λ × the connection-seconds of a
    /// request (one for the request's length, a second for 2 × 0.3 s).
    #[test]
    fn connections_in_use_follow_littles_law() {
        let dep = Deployment { api: tier(1, 4, 50, 100), ..one_process(50, 100, traffic(4.0, 0.0, 0.0)) };
        let sc = Scenario {
            arrivals: Arrivals::Poisson { qps: 20.0, seconds: 300.0, warmup_s: 20.0 },
            cpu: false,
            ..burst(0, 2)
        };
        let r = simulate(&dep, &sc);
        let expected = 20.0 * (4.0 + 2.0 * NESTED_HOLD_S);
        assert!((r.api.mean_in_use / expected - 1.0).abs() < 0.05, "{} vs {expected}", r.api.mean_in_use);
        assert_eq!(r.api.waited, 0);
    }

    /// A gevent process is one core: CPU-heavy requests at high utilisation stay longer and hold
    /// their connections longer than the same requests without CPU contention.
    #[test]
    fn cpu_contention_lengthens_holds() {
        let mut p = traffic(0.1, 0.0, 0.0);
        p.api_cpu_ms_blocking = Millis(84.0);
        p.connections_mean = 1.5;
        let dep = Deployment { api: tier(1, 1, 100, 200), ..one_process(100, 200, p) };
        let sc = Scenario { arrivals: Arrivals::Poisson { qps: 9.0, seconds: 200.0, warmup_s: 10.0 }, ..burst(0, 4) };
        let with = simulate(&dep, &sc);
        let without = simulate(&dep, &Scenario { cpu: false, ..sc });
        assert!((with.api.cpu_utilisation - 9.0 * 0.084).abs() < 0.05, "{}", with.api.cpu_utilisation);
        assert!(
            with.api.mean_in_use > 2.0 * without.api.mean_in_use,
            "{} vs {}",
            with.api.mean_in_use,
            without.api.mean_in_use
        );
    }
}
