"""AFLW-19 (19 landmarks), AFLWinfo_release.mat splits."""
