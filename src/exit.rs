//! The exit-code contract: 0 success, 1 findings or an infeasible plan, 2 usage, input or I/O
//! error. One enum, mapped to the process exit code in `main.rs` only.

/// What a command's run means for the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: done, nothing to report.
    Success,
    /// 1: findings at or above `--fail-on`, or a plan that does not fit its cap.
    Findings,
    /// 2: bad usage, unreadable input, a failed write.
    Error,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Findings => 1,
            ExitStatus::Error => 2,
        }
    }
}
