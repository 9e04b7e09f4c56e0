//! Wall-clock jumps on the site box. Poll times are wall-clock times; when the clock is set
//! (NTP stepping it after a boot without a real-time clock, a hand correction), readings jump
//! in time. The collector cannot know which side is right, but it can say that it happened:
//! the status counts jumps and gives the last one's size. Pure.

use std::time::Instant;

/// Wall time and monotonic time may drift apart by this much between two looks before it is
/// a jump (NTP slews far less; a step is seconds or more).
pub const JUMP_THRESHOLD_MS: i64 = 2_000;

/// Compares the wall clock with the monotonic clock at each look.
#[derive(Debug, Default, Clone)]
pub struct ClockWatch {
    last: Option<(u64, Instant)>,
}

impl ClockWatch {
    /// Looks at the clocks: `wall_ms` (ms since the Unix epoch) and `mono` now. Returns how
    /// far the wall clock jumped since the last look (positive: forward) when that is more
    /// than [`JUMP_THRESHOLD_MS`].
    pub fn observe(&mut self, wall_ms: u64, mono: Instant) -> Option<i64> {
        let jump = self.last.map(|(last_wall, last_mono)| {
            let wall = i128::from(wall_ms) - i128::from(last_wall);
            let elapsed = i128::try_from(mono.saturating_duration_since(last_mono).as_millis())
                .unwrap_or(i128::MAX);
            i64::try_from(wall - elapsed).unwrap_or(i64::MAX)
        });
        self.last = Some((wall_ms, mono));
        jump.filter(|j| j.abs() > JUMP_THRESHOLD_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_step_of_the_wall_clock_is_a_jump_steady_time_is_not() {
        let t0 = Instant::now();
        let mut w = ClockWatch::default();
        assert_eq!(w.observe(1_000_000, t0), None, "first look");
        // 10 s later on both clocks (and a little drift): no jump.
        assert_eq!(w.observe(1_010_300, t0 + Duration::from_secs(10)), None);
        // The wall clock stepped forward by an hour within 10 s.
        assert_eq!(
            w.observe(4_620_300, t0 + Duration::from_secs(20)),
            Some(3_600_000)
        );
        // And back by 5 minutes.
        assert_eq!(
            w.observe(4_330_300, t0 + Duration::from_secs(30)),
            Some(-300_000)
        );
        assert_eq!(w.observe(4_340_300, t0 + Duration::from_secs(40)), None);
    }
}
