// Scheduler module
