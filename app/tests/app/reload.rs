//! Hot reload: a changed source reaches upgradable processes as OUTDATED.
