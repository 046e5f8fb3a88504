//! The farm's clock in workload time: the one place wall-clock readings are converted, and
//! where a job's time scale is adopted without the clock jumping.

use std::time::Instant;

/// Workload seconds since the node started. A time-scale change re-bases the clock at the
/// instant of the change, so readings stay continuous and increasing.
#[derive(Clone, Debug)]
pub struct FarmClock {
    /// The instant of the last (re)basing and the workload time it stood for.
    base: Instant,
    base_s: f64,
    time_scale: f64,
}

impl FarmClock {
    /// A clock at 0 now, running `time_scale` wall seconds per workload second.
    pub fn new(time_scale: f64) -> FarmClock {
        FarmClock {
            base: Instant::now(),
            base_s: 0.0,
            time_scale,
        }
    }

    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    /// Workload seconds now.
    pub fn now_s(&self) -> f64 {
        self.at(Instant::now())
    }

    /// Workload seconds at `instant` (before the last re-basing, at the current scale).
    pub fn at(&self, instant: Instant) -> f64 {
        let wall = if instant >= self.base {
            instant.duration_since(self.base).as_secs_f64()
        } else {
            -self.base.duration_since(instant).as_secs_f64()
        };
        self.base_s + wall / self.time_scale
    }

    /// A wall-clock duration (seconds) in workload seconds.
    pub fn workload_s(&self, wall_s: f64) -> f64 {
        wall_s / self.time_scale
    }

    /// A workload duration (seconds) in wall seconds.
    pub fn wall_s(&self, workload_s: f64) -> f64 {
        workload_s * self.time_scale
    }

    /// From now on, `time_scale` wall seconds per workload second.
    pub fn set_time_scale(&mut self, time_scale: f64) {
        let now = Instant::now();
        self.base_s = self.at(now);
        self.base = now;
        self.time_scale = time_scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_new_time_scale_keeps_the_clock_continuous() {
        let mut clock = FarmClock::new(0.5);
        let t0 = clock.base;
        assert_eq!(clock.at(t0 + Duration::from_secs(1)), 2.0);
        assert_eq!(clock.workload_s(3.0), 6.0);
        assert_eq!(clock.wall_s(6.0), 3.0);
        let before = clock.now_s();
        clock.set_time_scale(0.1);
        let rebased = clock.base;
        let at_change = clock.at(rebased);
        assert!(at_change >= before, "{at_change} < {before}");
        // After the change a wall second is ten workload seconds; an instant before it still
        // reads earlier.
        assert!((clock.at(rebased + Duration::from_secs(1)) - at_change - 10.0).abs() < 1e-9);
        assert!(clock.at(t0) <= at_change);
    }
}
