-- One person across account kinds: GET /api/v1/users?unionid= finds every account's record of
-- a unionid (the Official Account's follower, the mini program's user).
CREATE INDEX IF NOT EXISTS wxgate_users_unionid ON wxgate_users (unionid);
