-- Partner Center answers 409 to any existing app consent, whatever its permissions. When samgate
-- did not make that consent (or made it with other grants) it records `exists`: a consent of
-- unknown permissions, shown as stale until re-applied. Runs record the same per customer.
ALTER TABLE app_consents DROP CONSTRAINT app_consents_state_check;
ALTER TABLE app_consents ADD CONSTRAINT app_consents_state_check
    CHECK (state IN ('granted', 'exists', 'removed', 'failed'));

ALTER TABLE app_consent_run_items DROP CONSTRAINT app_consent_run_items_state_check;
ALTER TABLE app_consent_run_items ADD CONSTRAINT app_consent_run_items_state_check
    CHECK (state IN ('pending', 'granted', 'already_granted', 'granted_no_gdap',
                     'exists_other_grants', 'failed'));
