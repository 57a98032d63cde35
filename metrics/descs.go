package metrics

import "github.com/prometheus/client_golang/prometheus"

// Every metric of the collector. Register adds the group and member
// labels to each.
var (
	// Queues (the same figures from every member: they are read from
	// the structure, which the group shares).
	queueDepth       = desc("qmgr_queue_depth_messages", "Messages on the queue, committed or not (CURDEPTH).", "structure", "queue")
	queueUncommitted = desc("qmgr_queue_uncommitted_messages", "Puts and gets on the queue in units of work not yet committed (UNCOM).", "structure", "queue")
	queueMaxDepth    = desc("qmgr_queue_max_depth_messages", "The queue's MAXDEPTH.", "structure", "queue")
	queueOpen        = desc("qmgr_queue_open_handles", "Handles open on the queue, by direction: input (IPPROCS) or output (OPPROCS).", "structure", "queue", "direction")
	queueOldestAge   = desc("qmgr_queue_oldest_message_age_seconds", "Age of the oldest message on the queue (MSGAGE); 0 when it is empty.", "structure", "queue")
	queuePuts        = desc("qmgr_queue_put_messages_total", "Messages made available on the queue since it was created: puts outside syncpoint and committed puts.", "structure", "queue")
	queuePutBytes    = desc("qmgr_queue_put_bytes_total", "Body bytes of the messages counted by qmgr_queue_put_messages_total.", "structure", "queue")
	queueGets        = desc("qmgr_queue_get_messages_total", "Messages removed from the queue for good by gets since it was created: outside syncpoint, committed, or released views.", "structure", "queue")
	queueGetBytes    = desc("qmgr_queue_get_bytes_total", "Body bytes of the messages counted by qmgr_queue_get_messages_total.", "structure", "queue")
	queueBackouts    = desc("qmgr_queue_backout_messages_total", "Messages given back to the queue with their backout count raised (backed out gets, requeued views).", "structure", "queue")
	queueBackoutB    = desc("qmgr_queue_backout_bytes_total", "Body bytes of the messages counted by qmgr_queue_backout_messages_total.", "structure", "queue")
	queueExpired     = desc("qmgr_queue_expired_messages_total", "Expired messages removed from the queue (by gets and the expiry scan).", "structure", "queue")
	queueExpiredB    = desc("qmgr_queue_expired_bytes_total", "Body bytes of the messages counted by qmgr_queue_expired_messages_total.", "structure", "queue")

	// Structures.
	structState       = desc("qmgr_structure_state", "1 for the structure's state (ACTIVE, RECOVERING, FAILED, or MISSING: defined and its file not found), 0 for the others.", "structure", "state")
	structEntries     = desc("qmgr_structure_entries", "The structure's message entries, used or free.", "structure", "state")
	structElements    = desc("qmgr_structure_elements", "The structure's data elements, used or free.", "structure", "state")
	structElemSize    = desc("qmgr_structure_element_size_bytes", "Size of one data element of the structure.", "structure")
	structConns       = desc("qmgr_structure_connections", "Connections (owners) registered in the structure, of every member.", "structure")
	structQueues      = desc("qmgr_structure_queues", "Queues in the structure.", "structure")
	structCommits     = desc("qmgr_structure_units_of_work_committed_total", "Units of work committed in the structure by every member's connections (a unit of work spanning structures counts in each); not those recoveries ended.", "structure")
	structBackouts    = desc("qmgr_structure_units_of_work_backed_out_total", "Units of work backed out in the structure by every member's connections; not those recoveries ended.", "structure")
	structLogged      = desc("qmgr_structure_logged_bytes_total", "Bytes of recovery log written about the structure's messages since it was created.", "structure")
	structFailures    = desc("qmgr_structure_failures_total", "Failures of the structure this member found.", "structure")
	structRecoveries  = desc("qmgr_structure_recoveries_total", "Times this member rebuilt the structure from its backup and the logs after a failure (automatic, or RECOVER CFSTRUCT).", "structure")
	structEstimate    = desc("qmgr_structure_recovery_estimate_seconds", "How long recovering the structure would take now (the log since its newest backup, at the last measured replay rate).", "structure")
	structLastBackup  = desc("qmgr_structure_last_backup_timestamp_seconds", "When the structure's newest recorded backup was taken (any member's); absent when it has none.", "structure")
	structBackupCount = desc("qmgr_structure_backups", "Backups of the structure recorded in the repository (kept, not ever taken).", "structure")

	// The member and its peers.
	memberConns          = desc("qmgr_member_connections", "Connections registered under this member, by kind: app (applications), chinit (its channel initiator's), amqp (its AMQP listener's).", "kind")
	memberPeerRecoveries = desc("qmgr_member_peer_recoveries_total", "Dead members this member recovered.")
	memberPeerRecoveryD  = desc("qmgr_member_peer_recovery_duration_seconds", "How long each peer recovery by this member took.")
	memberConnRecoveries = desc("qmgr_member_connection_recoveries_total", "Connections whose work this member finished or undid (its own applications that died, or a dead member's connections).")
	memberLongUOWs       = desc("qmgr_member_long_units_of_work_backed_out_total", "Units of work this member backed out for being open longer than the maximum age.")
	memberCmdRefused     = desc("qmgr_member_command_connections_refused_total", "Command socket connections this member refused.")
	memberChildUp        = desc("qmgr_member_child_up", "1 while the member's child process runs.", "child")
	memberChildStarts    = desc("qmgr_member_child_starts_total", "Times the member started its child process.", "child")
	peerState            = desc("qmgr_peer_state", "1 for each member's state in the peer table (active, stopping, failed, recovering, recovered, stopped, starting), 0 for the others.", "peer", "state")
	peerHeartbeatAge     = desc("qmgr_peer_heartbeat_age_seconds", "Age of each member's last heartbeat in the peer table (this member's clock); only members whose state is running.", "peer")

	// The member's recovery log.
	logRecords      = desc("qmgr_log_records_total", "Records the member's recovery log made durable.")
	logWrites       = desc("qmgr_log_writes_total", "Writes of the member's recovery log.")
	logSyncs        = desc("qmgr_log_syncs_total", "Syncs (fdatasync) of the member's recovery log.")
	logBytes        = desc("qmgr_log_written_bytes_total", "Bytes the member's recovery log wrote, headers and padding included.")
	logFailures     = desc("qmgr_log_failures_total", "Times a write, sync or reservation of the member's recovery log failed.")
	logSyncDuration = desc("qmgr_log_sync_duration_seconds", "How long each sync of the member's recovery log took.")
	logPerSync      = desc("qmgr_log_records_per_sync", "Records each sync of the member's recovery log made durable.")

	// Backups this member took.
	backups         = desc("qmgr_member_backups_total", "Backups this member took.")
	backupDuration  = desc("qmgr_member_backup_duration_seconds", "How long each backup by this member took.")
	backupLastEnded = desc("qmgr_member_last_backup_timestamp_seconds", "When this member's last backup ended; absent before its first.")

	// Channels (the shared channel status table; the same from every
	// member).
	chanState   = desc("qmgr_channel_state", "1 for the channel's state (INACTIVE, STARTING, RUNNING, RETRYING, STOPPING, STOPPED), 0 for the others.", "channel", "type", "state")
	chanOwner   = desc("qmgr_channel_owner", "1 for the member whose channel initiator runs the channel's instance.", "channel", "owner")
	chanMsgs    = desc("qmgr_channel_instance_messages", "Messages moved by the channel's current or last instance (wraps at 2^32).", "channel")
	chanBatch   = desc("qmgr_channel_last_batch_sequence", "Sequence number of the last batch the channel committed on both sides.", "channel")
	chanInDoubt = desc("qmgr_channel_in_doubt", "1 while a sender channel's batch is sent and not yet confirmed.", "channel")
	chanRetries = desc("qmgr_channel_retries", "Connection attempts of the channel that failed since its last success.", "channel")

	// Channels, as the member's channel initiator (a child process) last
	// wrote its figures (package channel/chanstats): its own counts since
	// it started, so the group's figure for a channel is the sum over the
	// members (unlike the status table's above); absent when it runs
	// none, or its figures are older than chanstats.MaxAge or another
	// process's.
	chanSentBytes  = desc("qmgr_channel_sent_bytes_total", "Bytes this member's channel initiator sent on the channel in committed batches since it started: each message's transmission header, properties and body (MSG frame payloads; not frame headers nor control frames). Sum over members for the group.", "channel")
	chanRecvBytes  = desc("qmgr_channel_received_bytes_total", "Bytes this member's channel initiator received on the channel in committed batches since it started: each message's transmission header, properties and body (MSG frame payloads; not frame headers nor control frames). Sum over members for the group.", "channel")
	chanBatches    = desc("qmgr_channel_batches_total", "Batches of the channel this member's channel initiator committed (sent and confirmed, or received) since it started. Sum over members for the group.", "channel")
	chanMessages   = desc("qmgr_channel_messages_total", "Messages of the batches counted by qmgr_channel_batches_total. Sum over members for the group.", "channel")
	chanTakeovers  = desc("qmgr_channel_takeovers_total", "Times this member's channel initiator took the sender channel over from an instance that died (its member or channel initiator killed) since it started. Sum over members for the group.", "channel")
	chanFiguresAge = desc("qmgr_channel_figures_age_seconds", "How old the channel initiator's channel figures are.")

	// AMQP, as the member's listener (a child process) last wrote its
	// figures (package amqp/stats): absent when it runs none, or its
	// figures are older than stats.MaxAge or another process's.
	amqpConns      = desc("qmgr_amqp_connections", "AMQP client connections open on this member's listener (past login).")
	amqpChannels   = desc("qmgr_amqp_channels", "AMQP channels open on this member's listener.")
	amqpConsumers  = desc("qmgr_amqp_consumers", "AMQP consumers on this member's listener.")
	amqpGroupConns = desc("qmgr_amqp_group_connections", "Group connection slots this member's AMQP clients hold.")
	amqpPublished  = desc("qmgr_amqp_published_messages_total", "Publishes this member's listener handled since it started.")
	amqpDelivered  = desc("qmgr_amqp_delivered_messages_total", "Deliveries (basic.deliver, basic.get-ok) this member's listener wrote since it started.")
	amqpRefused    = desc("qmgr_amqp_refused_logins_total", "Logins and connection opens this member's listener refused since it started.")
	amqpBlocked    = desc("qmgr_amqp_publishers_blocked", "1 while flow control holds this member's AMQP publishers (connection.blocked).")
	amqpAge        = desc("qmgr_amqp_figures_age_seconds", "How old the listener's AMQP figures are.")

	// The member process's read cache of offloaded bodies (shared message
	// data sets; applications and the member's child processes have their
	// own).
	smdsCacheHits   = desc("qmgr_smds_cache_hits_total", "Reads of offloaded bodies this member process found in its read cache.")
	smdsCacheMisses = desc("qmgr_smds_cache_misses_total", "Reads of offloaded bodies this member process did not find in its read cache.")
	smdsCacheEvicts = desc("qmgr_smds_cache_evictions_total", "Bodies evicted from this member process's read cache.")
	smdsCacheBytes  = desc("qmgr_smds_cache_bytes", "Bytes of bodies this member process's read cache holds.")
	smdsCacheMax    = desc("qmgr_smds_cache_max_bytes", "The size of this member process's read cache (--smds-cache; 0: none).")
	smdsFreeErrors  = desc("qmgr_smds_free_errors_total", "Runs of offloaded messages of the structure this member process failed to free (each stays used: a leak the data set's checker reports; the log names the error).", "structure")

	// Recovery units (SERVICE objects), from their role and progress
	// records in the CF (the same from every member); the names are
	// DISPLAY SVSTATUS's. Position figures are those of the replica in
	// the position now (absent while it has published none).
	unitState      = desc("qmgr_unit_state", "1 for the unit's state (RUNNING, STOPPING, STOPPED, RESTING: stopped with a resting snapshot), 0 for the others.", "unit", "state")
	unitEpoch      = desc("qmgr_unit_epoch", "The unit's epoch: it counts the changes of its primary or sender (each failover adds at least one).", "unit")
	unitGeneration = desc("qmgr_unit_generation", "The unit's generation: it counts the starts from an empty state (a new one when every replica was lost at once).", "unit")
	unitReplicas   = desc("qmgr_unit_replicas", "The unit's REPLICAS.", "unit")
	unitDiverged   = desc("qmgr_unit_diverged", "1 while the unit is marked DIVERGED: its replicas diverged from the primary too often, and it runs unreplicated until STOP and START SERVICE.", "unit")
	unitDivergence = desc("qmgr_unit_divergences", "Divergences of the unit's replicas counted in the current 10-minute window of its policy.", "unit")
	unitRole       = desc("qmgr_unit_role", "1 for the role of the position (PRIMARY, SENDER, SECONDARY, JOINING, STARTING, EXITING, VACANT), 0 for the others.", "unit", "position", "role")
	unitStatus     = desc("qmgr_unit_status", "1 for the status of the position's replica (STARTING, RUNNING, DIVERGED, HALTED: the primary held by flow control, EXITING), 0 for the others; absent for a vacant position.", "unit", "position", "status")
	unitLogged     = desc("qmgr_unit_logged_lsn", "The last input the position's replica logged (the primary) or received (a secondary).", "unit", "position")
	unitApplied    = desc("qmgr_unit_applied_lsn", "The last input the position's replica processed.", "unit", "position")
	unitSent       = desc("qmgr_unit_sent_lsn", "LSN_out as the position's replica last saw it: every output of the inputs up to it is committed to its destination.", "unit", "position")
	unitResendIn   = desc("qmgr_unit_resend_inputs", "Inputs whose outputs the position's replica holds unsent in its resend queue.", "unit", "position")
	unitResendB    = desc("qmgr_unit_resend_bytes", "Bytes of outputs the position's replica holds unsent in its resend queue.", "unit", "position")
	unitRestarts   = desc("qmgr_unit_restarts_total", "Replicas of the position that ended (died or exited) since the unit was defined.", "unit", "position")
	unitBeatAge    = desc("qmgr_unit_heartbeat_age_seconds", "Age of the position's replica's last published progress (this member's clock).", "unit", "position")

	// The collector itself.
	scrapeErrors = desc("qmgr_scrape_errors", "Parts of this scrape that could not be read, by part (structures, queues, peers, channels, repository, chinit, amqp, units; member when it has stopped): 1 when the part failed.", "part")
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// allDescs is every descriptor above, for Describe.
var allDescs = []*prometheus.Desc{
	queueDepth, queueUncommitted, queueMaxDepth, queueOpen, queueOldestAge, queuePuts, queuePutBytes, queueGets, queueGetBytes,
	queueBackouts, queueBackoutB, queueExpired, queueExpiredB,
	structState, structEntries, structElements, structElemSize, structConns, structQueues, structCommits, structBackouts, structLogged,
	structFailures, structRecoveries, structEstimate, structLastBackup, structBackupCount,
	memberConns, memberPeerRecoveries, memberPeerRecoveryD, memberConnRecoveries, memberLongUOWs, memberCmdRefused, memberChildUp,
	memberChildStarts, peerState, peerHeartbeatAge,
	logRecords, logWrites, logSyncs, logBytes, logFailures, logSyncDuration, logPerSync,
	backups, backupDuration, backupLastEnded,
	chanState, chanOwner, chanMsgs, chanBatch, chanInDoubt, chanRetries,
	chanSentBytes, chanRecvBytes, chanBatches, chanMessages, chanTakeovers, chanFiguresAge,
	amqpConns, amqpChannels, amqpConsumers, amqpGroupConns, amqpPublished, amqpDelivered, amqpRefused, amqpBlocked, amqpAge,
	smdsCacheHits, smdsCacheMisses, smdsCacheEvicts, smdsCacheBytes, smdsCacheMax, smdsFreeErrors,
	unitState, unitEpoch, unitGeneration, unitReplicas, unitDiverged, unitDivergence, unitRole, unitStatus, unitLogged, unitApplied, unitSent, unitResendIn,
	unitResendB, unitRestarts, unitBeatAge,
	scrapeErrors,
}
