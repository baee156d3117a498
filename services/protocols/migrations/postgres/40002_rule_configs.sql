-- Each tenant's rule thresholds (recovery_rules::Config), written by its
-- managers. A tenant without a row evaluates with the studio defaults.
-- Durations are whole seconds, the race evening is local "HH:MM", flags are
-- 1/0, and an empty required_waiver_version means any version counts.
CREATE TABLE protocols_rule_configs (
    tenant_id               TEXT PRIMARY KEY,
    cryo_window_s           BIGINT NOT NULL,
    daily_cryo_limit        BIGINT NOT NULL,
    progression_start_s     BIGINT NOT NULL,
    progression_step_s      BIGINT NOT NULL,
    progression_max_s       BIGINT NOT NULL,
    adult_age               BIGINT NOT NULL,
    max_systolic            BIGINT NOT NULL,
    max_diastolic           BIGINT NOT NULL,
    stent_months            BIGINT NOT NULL,
    race_evening            TEXT NOT NULL,
    -- 1 required, 0 not
    waiver_required         BIGINT NOT NULL,
    required_waiver_version TEXT NOT NULL,
    update_time             BIGINT NOT NULL,
    updated_by              TEXT NOT NULL
);
