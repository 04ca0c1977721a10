-- Gateway pipeline: each API key's own callback signing secret (gateway.apikeys).
-- Callbacks used to be signed with the key's SHA-256, which is key_hash itself:
-- anyone who could read this table could forge them. The secret is stored
-- sealed with the process secret key (AES-256-GCM, gateway.secretbox: version
-- byte, nonce, ciphertext and tag, bound to key_hash), never in clear.
-- Keys that exist before this migration keep NULL here and are given a secret
-- the first time one of their callbacks is signed (their owner sees it by
-- rotating it): SQL cannot seal, it has no access to the secret key.
ALTER TABLE api_keys ADD COLUMN signing_secret bytea;
ALTER TABLE api_keys ADD COLUMN signing_secret_at timestamptz;  -- when it was issued or rotated
