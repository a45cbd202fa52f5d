//! Redis-backed and in-process services: state cache, presence, rate limits, leaderboards.
