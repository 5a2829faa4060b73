/**
 * The quiet-hour rules planned once per session. herald.allowed_send_time (every message, at
 * the claim and again at the confirmation) matches the rules in quiet_hour_rules against the
 * recipient's number and regions. PL/pgSQL planned that statement again on every call: with
 * plan_cache_mode = auto it keeps a custom plan for as long as one made for the values at hand
 * looks cheaper than one made for any values, and for a LIKE on the number it always does.
 * Planning cost more than the statement: ~54 µs a call, now ~18 (1,000 contacts, one session).
 *
 * Only here: quiet_hour_rules is a small table of law that changes with a migration, so a plan
 * made once is never made for a table that has since grown. The same setting on the claim, the
 * confirmations, the answers and the status callbacks was tried and measured, and left out:
 * their generic plans are made for the sizes of messages, message_attempts and provider_events
 * when the session first calls them, and kept until the next ANALYZE. On a new project's first
 * drain (tables analyzed while nearly empty) a claim's generic plan scanned message_attempts
 * whole for every batch: 100,000 messages took 54-61 s instead of 15. Custom plans are made for
 * the tables' sizes at each call.
 *
 *   allowed_send_time   per message: the quiet-hour rules that apply to its recipient.
 */

/** Section - the per-message rules */
alter function herald.allowed_send_time(public.contacts, public.message_category, public.workspaces, timestamptz)
  set plan_cache_mode = force_generic_plan;
