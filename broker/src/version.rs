//! The Redis version whose behaviour the broker reproduces, tests against and reports.

/// As HELLO, INFO and scripts (`redis.REDIS_VERSION`) report it.
pub const REDIS_VERSION: &str = "7.0.15";

/// The same as one number, `0x00MMmmpp` (`redis.REDIS_VERSION_NUM`).
pub const REDIS_VERSION_NUM: u32 = 0x07000f;

#[cfg(test)]
mod tests {
    #[test]
    fn the_number_is_the_version() {
        let parts: Vec<u32> = super::REDIS_VERSION
            .split('.')
            .map(|p| p.parse().expect("a number"))
            .collect();
        assert_eq!(
            super::REDIS_VERSION_NUM,
            parts[0] << 16 | parts[1] << 8 | parts[2]
        );
    }
}
