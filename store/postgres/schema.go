package postgres

// The schema. Times are timestamptz (NULL where the Go value may be the
// zero time); text columns hold cleaned text (see clean); opaque values
// (decision JSON, prepended header fields, verdicts, results) are bytea,
// because jsonb refuses \u0000 and hostile mail can put one anywhere.
func init() {
	registerMigration("0001_core", `CREATE TABLE messages (
		id             text PRIMARY KEY,
		received_at    timestamptz NOT NULL,
		state          text NOT NULL,
		state_at       timestamptz NOT NULL,
		direction      text NOT NULL DEFAULT '',
		client_ip      text NOT NULL DEFAULT '',
		helo           text NOT NULL DEFAULT '',
		proto          text NOT NULL DEFAULT '',
		smtputf8       boolean NOT NULL DEFAULT false,
		eightbit       boolean NOT NULL DEFAULT false,
		mail_from      text NOT NULL DEFAULT '',
		rcpts          text[] NOT NULL DEFAULT '{}',
		size           bigint NOT NULL DEFAULT 0,
		message_id     text NOT NULL DEFAULT '',
		hdr_from       text NOT NULL DEFAULT '',
		subject        text NOT NULL DEFAULT '',
		action         text NOT NULL DEFAULT '',
		reasons        text[] NOT NULL DEFAULT '{}',
		score          double precision NOT NULL DEFAULT 0,
		decision       bytea,
		prepend        bytea,
		subject_prefix text NOT NULL DEFAULT '',
		strip_ar       boolean NOT NULL DEFAULT false,
		hold_until     timestamptz,
		-- retention removed the bytes (each purge looks only at the rest)
		content_purged boolean NOT NULL DEFAULT false
	);
	CREATE INDEX messages_state ON messages (state, received_at, id);
	CREATE INDEX messages_received ON messages (received_at, id);
	CREATE INDEX messages_state_at ON messages (state, state_at);
	CREATE INDEX messages_msgid ON messages (message_id);

	-- The message bytes, in order, one row per chunk; seq 0 always exists
	-- (empty for an empty message), so "no row 0" means "no bytes".
	CREATE TABLE spool (
		msg_id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
		seq    integer NOT NULL,
		data   bytea NOT NULL,
		PRIMARY KEY (msg_id, seq)
	);

	CREATE TABLE deliveries (
		id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		msg_id      text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
		route       text NOT NULL,
		mail_from   text NOT NULL,
		rcpts       text[] NOT NULL,
		attempts    integer NOT NULL DEFAULT 0,
		next_at     timestamptz NOT NULL,
		created_at  timestamptz NOT NULL,
		lease_until timestamptz,
		lease_owner text NOT NULL DEFAULT '',
		extra       bytea,
		results     bytea,
		-- some recipient accepted the message in some attempt
		accepted    boolean NOT NULL DEFAULT false,
		last_error  text NOT NULL DEFAULT '',
		done_at     timestamptz
	);
	-- The claim's hot path: only pending deliveries are indexed.
	CREATE INDEX deliveries_due ON deliveries (next_at, id) WHERE done_at IS NULL;
	CREATE INDEX deliveries_msg ON deliveries (msg_id);
	CREATE INDEX deliveries_owner ON deliveries (lease_owner) WHERE done_at IS NULL;

	CREATE TABLE files (
		id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		msg_id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
		sha256 text NOT NULL,
		path   text NOT NULL,
		name   text NOT NULL,
		type   text NOT NULL,
		size   bigint NOT NULL
	);
	CREATE INDEX files_sha ON files (sha256);
	CREATE INDEX files_msg ON files (msg_id);

	CREATE TABLE audit (
		id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		msg_id text NOT NULL,
		at     timestamptz NOT NULL,
		actor  text NOT NULL,
		action text NOT NULL,
		note   text NOT NULL DEFAULT '',
		detail text NOT NULL DEFAULT ''
	);
	CREATE INDEX audit_msg ON audit (msg_id, at, id);

	-- Content-addressed blobs (sandbox uploads), chunked like the spool.
	CREATE TABLE blobs (
		sha256    text PRIMARY KEY,
		size      bigint NOT NULL,
		stored_at timestamptz NOT NULL
	);
	CREATE INDEX blobs_stored ON blobs (stored_at);
	CREATE TABLE blob_chunks (
		sha256 text NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
		seq    integer NOT NULL,
		data   bytea NOT NULL,
		PRIMARY KEY (sha256, seq)
	);`)

	registerMigration("0002_sandbox", `CREATE TABLE sandbox_verdicts (
		key     text PRIMARY KEY,
		sha256  text NOT NULL,
		verdict bytea NOT NULL,
		expires timestamptz NOT NULL
	);
	CREATE INDEX sandbox_verdicts_expires ON sandbox_verdicts (expires);
	CREATE TABLE sandbox_tasks (
		key        text PRIMARY KEY,
		sha256     text NOT NULL,
		name       text NOT NULL,
		type       text NOT NULL,
		size       bigint NOT NULL,
		options    bytea NOT NULL,
		ref        text NOT NULL,
		task_id    text NOT NULL DEFAULT '',
		created    timestamptz,
		submitted  timestamptz,
		attempts   integer NOT NULL,
		searched   boolean NOT NULL,
		polls      integer NOT NULL,
		failures   integer NOT NULL,
		next_poll  timestamptz NOT NULL,
		last_error text NOT NULL
	);
	CREATE INDEX sandbox_tasks_due ON sandbox_tasks (next_poll, key);
	CREATE INDEX sandbox_tasks_sha ON sandbox_tasks (sha256);`)

	registerMigration("0003_thread", `CREATE TABLE thread_messages (
		id         text PRIMARY KEY,
		message_id text NOT NULL,
		thread     text NOT NULL,
		sender     text NOT NULL,
		at         timestamptz NOT NULL,
		flags      integer NOT NULL,
		outcome    text NOT NULL,
		verdict    text NOT NULL,
		expires    timestamptz,
		rec        bytea NOT NULL
	);
	CREATE INDEX thread_messages_msgid ON thread_messages (message_id);
	CREATE INDEX thread_messages_thread ON thread_messages (thread, at);
	CREATE INDEX thread_messages_sender ON thread_messages (sender, at);
	CREATE INDEX thread_messages_at ON thread_messages (at);
	CREATE TABLE thread_pairs (
		ext       text NOT NULL,
		internal  text NOT NULL,
		first_at  timestamptz NOT NULL,
		last_at   timestamptz NOT NULL,
		first_dir text NOT NULL,
		inbound   integer NOT NULL,
		outbound  integer NOT NULL,
		payloads  integer NOT NULL,
		PRIMARY KEY (ext, internal)
	);
	CREATE INDEX thread_pairs_last ON thread_pairs (last_at);
	CREATE TABLE thread_domains (
		domain    text PRIMARY KEY,
		first_at  timestamptz NOT NULL,
		last_at   timestamptz NOT NULL,
		first_dir text NOT NULL,
		inbound   integer NOT NULL,
		outbound  integer NOT NULL,
		payloads  integer NOT NULL
	);
	CREATE INDEX thread_domains_last ON thread_domains (last_at);
	CREATE INDEX thread_domains_outbound ON thread_domains ((inbound + outbound) DESC, domain) WHERE outbound > 0;
	CREATE TABLE thread_names (
		key     text NOT NULL,
		addr    text NOT NULL,
		name    text NOT NULL,
		last_at timestamptz NOT NULL,
		PRIMARY KEY (key, addr)
	);
	CREATE INDEX thread_names_last ON thread_names (last_at);
	CREATE TABLE thread_flags (
		addr   text PRIMARY KEY,
		at     timestamptz NOT NULL,
		detail text NOT NULL
	);
	CREATE INDEX thread_flags_at ON thread_flags (at);
	-- Password candidates are bytea: they must come back byte for byte.
	CREATE TABLE thread_secrets (
		id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		msg_id  text NOT NULL,
		value   bytea NOT NULL,
		at      timestamptz NOT NULL,
		expires timestamptz NOT NULL
	);
	CREATE INDEX thread_secrets_msg ON thread_secrets (msg_id);
	CREATE INDEX thread_secrets_expires ON thread_secrets (expires);`)
}
