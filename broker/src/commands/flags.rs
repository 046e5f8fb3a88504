//! Command flags as a typed set: dispatch tests bits, and `COMMAND INFO` prints the names.

use std::fmt;

/// The flags of one command. The named ones are Redis's and `COMMAND INFO` lists them in
/// Redis's order ([`CommandFlags::names`]); the last two are our own, for dispatch only.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandFlags(u32);

impl CommandFlags {
    pub const WRITE: CommandFlags = CommandFlags(1 << 0);
    pub const READONLY: CommandFlags = CommandFlags(1 << 1);
    pub const DENYOOM: CommandFlags = CommandFlags(1 << 2);
    pub const ADMIN: CommandFlags = CommandFlags(1 << 3);
    /// Refused inside scripts (`redis.call`).
    pub const NOSCRIPT: CommandFlags = CommandFlags(1 << 4);
    pub const BLOCKING: CommandFlags = CommandFlags(1 << 5);
    pub const LOADING: CommandFlags = CommandFlags(1 << 6);
    pub const STALE: CommandFlags = CommandFlags(1 << 7);
    pub const SKIP_MONITOR: CommandFlags = CommandFlags(1 << 8);
    pub const SKIP_SLOWLOG: CommandFlags = CommandFlags(1 << 9);
    pub const FAST: CommandFlags = CommandFlags(1 << 10);
    /// Allowed before AUTH.
    pub const NO_AUTH: CommandFlags = CommandFlags(1 << 11);
    pub const MAY_REPLICATE: CommandFlags = CommandFlags(1 << 12);
    pub const NO_MANDATORY_KEYS: CommandFlags = CommandFlags(1 << 13);
    /// Refused inside MULTI (the transaction aborts).
    pub const NO_MULTI: CommandFlags = CommandFlags(1 << 14);
    pub const ALLOW_BUSY: CommandFlags = CommandFlags(1 << 15);
    /// Ours: runs at once inside MULTI instead of being queued (the transaction commands,
    /// QUIT and RESET). Not listed by `COMMAND INFO`.
    pub const TX_IMMEDIATE: CommandFlags = CommandFlags(1 << 16);
    /// Ours: EXEC, which dispatch runs itself (the queued commands, under one lock). Not listed.
    pub const EXEC: CommandFlags = CommandFlags(1 << 17);
    /// Pub/sub commands (the ones a RESP2 subscriber may run are checked by name).
    pub const PUBSUB: CommandFlags = CommandFlags(1 << 18);
    pub const NO_ASYNC_LOADING: CommandFlags = CommandFlags(1 << 19);
    /// Keys found by parsing the arguments (numkeys, STREAMS, STORE…), not by position alone.
    pub const MOVABLE_KEYS: CommandFlags = CommandFlags(1 << 20);
    /// Ours: a container of subcommands (CLIENT, CONFIG…). Its flags serve dispatch;
    /// `COMMAND INFO` shows none for it, as Redis shows none for a container.
    pub const CONTAINER: CommandFlags = CommandFlags(1 << 21);

    /// Every flag `COMMAND INFO` shows, with its name, in Redis's order.
    const NAMED: [(CommandFlags, &'static str); 19] = [
        (Self::WRITE, "write"),
        (Self::READONLY, "readonly"),
        (Self::DENYOOM, "denyoom"),
        (Self::ADMIN, "admin"),
        (Self::PUBSUB, "pubsub"),
        (Self::NOSCRIPT, "noscript"),
        (Self::BLOCKING, "blocking"),
        (Self::LOADING, "loading"),
        (Self::STALE, "stale"),
        (Self::SKIP_MONITOR, "skip_monitor"),
        (Self::SKIP_SLOWLOG, "skip_slowlog"),
        (Self::FAST, "fast"),
        (Self::NO_AUTH, "no_auth"),
        (Self::MAY_REPLICATE, "may_replicate"),
        (Self::NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (Self::NO_ASYNC_LOADING, "no_async_loading"),
        (Self::NO_MULTI, "no_multi"),
        (Self::ALLOW_BUSY, "allow_busy"),
        (Self::MOVABLE_KEYS, "movablekeys"),
    ];

    pub const fn empty() -> CommandFlags {
        CommandFlags(0)
    }

    /// Both sets (a `const fn`, for the static command table).
    pub const fn union(self, other: CommandFlags) -> CommandFlags {
        CommandFlags(self.0 | other.0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: CommandFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names of the flags `COMMAND INFO` shows, in Redis's order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        let container = self.contains(Self::CONTAINER);
        Self::NAMED
            .into_iter()
            .filter(move |(flag, _)| !container && self.contains(*flag))
            .map(|(_, name)| name)
    }
}

impl std::ops::BitOr for CommandFlags {
    type Output = CommandFlags;

    fn bitor(self, other: CommandFlags) -> CommandFlags {
        self.union(other)
    }
}

impl fmt::Debug for CommandFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        list.entries(self.names());
        if self.contains(Self::TX_IMMEDIATE) {
            list.entry(&"(tx_immediate)");
        }
        if self.contains(Self::EXEC) {
            list.entry(&"(exec)");
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::CommandFlags;

    #[test]
    fn names_come_in_redis_order_without_our_own() {
        let quit = CommandFlags::ALLOW_BUSY
            | CommandFlags::NOSCRIPT
            | CommandFlags::NO_AUTH
            | CommandFlags::FAST
            | CommandFlags::TX_IMMEDIATE;
        assert_eq!(
            quit.names().collect::<Vec<_>>(),
            ["noscript", "fast", "no_auth", "allow_busy"]
        );
        assert!(quit.contains(CommandFlags::NO_AUTH | CommandFlags::FAST));
        assert!(!quit.contains(CommandFlags::WRITE));
        assert_eq!(CommandFlags::empty().names().count(), 0);
    }

    #[test]
    fn every_named_flag_has_its_own_bit() {
        let all = CommandFlags::NAMED
            .iter()
            .fold(CommandFlags::empty(), |acc, (f, _)| {
                assert_eq!(f.0.count_ones(), 1);
                assert!(!acc.contains(*f));
                acc | *f
            });
        assert_eq!(all.names().count(), CommandFlags::NAMED.len());
        assert!(!all.contains(CommandFlags::TX_IMMEDIATE) && !all.contains(CommandFlags::EXEC));
    }
}
