/**
 * provider_events indexed by sid only where a sid is looked up.
 *
 * Every status callback stores one provider_events row, and each row paid an entry in
 * provider_events_sid_idx. The index is read by one kind of lookup only: a status callback that
 * arrived before the dispatcher recorded its sid (outcome unknown_sid, no message yet), which
 * record_send_result and record_send_results replay, and the unmatched events of a sid that
 * erasure and the replay delete (message_id is null). A callback applied to its message is
 * found through the message (provider_events_workspace_message_idx) and never by its sid; on
 * the twilio-status bench those are all of them, and the index cost each one entry (one WAL
 * record of the five its insert writes).
 *
 * The index now holds the rows those lookups can match: no message, or unknown_sid. Both
 * lookups' predicates imply its predicate, so the planner keeps using it for them (the test
 * checks their plans); the rows it no longer holds are the ones no lookup asks for.
 */
drop index public.provider_events_sid_idx;
create index provider_events_sid_idx on public.provider_events (provider_sid)
  where message_id is null or outcome = 'unknown_sid';
comment on index public.provider_events_sid_idx is 'The events a sid is looked up for: an early callback kept as unknown_sid until record_send_result replays it, and the unmatched events of a sid (message_id is null). Applied callbacks are reached through their message instead.';
