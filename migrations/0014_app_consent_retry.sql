-- "Retry failed": a run may cover only the customers that failed in an earlier run of the partner.
ALTER TABLE app_consent_runs
    ADD COLUMN retry_of uuid REFERENCES app_consent_runs (id) ON DELETE SET NULL;
