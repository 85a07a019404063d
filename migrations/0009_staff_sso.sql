-- Staff single sign-on is bound to the Microsoft account (object id in the CPV tenant), not to
-- its sign-in name, which is mutable (and a guest's is its home UPN). The first SSO sign-in of a
-- staff member whose email matches binds the account; later ones match by object id only.
ALTER TABLE staff ADD COLUMN sso_oid uuid;
CREATE UNIQUE INDEX staff_sso_oid_key ON staff (sso_oid) WHERE sso_oid IS NOT NULL;
