//! The default host budget is shared between attrib processes: claims of live processes are set
//! aside, claims of dead ones are removed, and the claims can be turned off.

use attrib_tensor::memory::{default_host_budget, peers, shared_budget, MAX_DEFAULT_BUDGET, MIN_SHARED_BUDGET};

#[test]
fn claims_of_live_processes_shrink_the_budget() {
    // One test function: the environment is process-wide.
    let dir = std::env::temp_dir().join(format!("attrib-budget-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::env::set_var("ATTRIB_BUDGET_DIR", &dir);

    assert_eq!(shared_budget(20 << 30, 0), MAX_DEFAULT_BUDGET);
    assert_eq!(shared_budget(20 << 30, 14 << 30), 3 << 30);
    assert_eq!(shared_budget(20 << 30, 30 << 30), MIN_SHARED_BUDGET);

    let alone = default_host_budget();
    let mine = dir.join(std::process::id().to_string());
    assert_eq!(std::fs::read_to_string(&mine).unwrap().trim().parse::<u64>().unwrap(), alone, "the process claims its budget");

    // A live process (pid 1 always exists) claiming 1 TiB leaves only the minimum.
    std::fs::write(dir.join("1"), (1u64 << 40).to_string()).unwrap();
    // A process that is gone (pid beyond pid_max) does not count and its claim is removed.
    std::fs::write(dir.join("4194305"), (1u64 << 40).to_string()).unwrap();
    assert_eq!(peers::claims_of_others(), 1 << 40);
    assert!(!dir.join("4194305").exists(), "the dead process's claim is removed");
    assert_eq!(default_host_budget(), MIN_SHARED_BUDGET);
    let claimed = || std::fs::read_to_string(&mine).unwrap().trim().parse::<u64>().unwrap();
    assert_eq!(claimed(), MIN_SHARED_BUDGET, "a budget that changed by more than an eighth is claimed again");
    // Unchanged budgets are not written again (each call sizes chunks; a write cost ~1 ms).
    std::fs::remove_file(&mine).unwrap();
    assert_eq!(default_host_budget(), MIN_SHARED_BUDGET);
    assert!(!mine.exists(), "an unchanged claim is not rewritten");

    std::env::set_var("ATTRIB_SHARED_BUDGET", "0");
    assert!(default_host_budget() > MIN_SHARED_BUDGET || alone == MIN_SHARED_BUDGET, "claims off: half of MemAvailable again");
    std::env::remove_var("ATTRIB_SHARED_BUDGET");
    std::env::remove_var("ATTRIB_BUDGET_DIR");
    let _ = std::fs::remove_dir_all(&dir);
}
