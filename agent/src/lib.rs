//! The autoscaling brain: observation, policies, simulator and trainer (to come).
