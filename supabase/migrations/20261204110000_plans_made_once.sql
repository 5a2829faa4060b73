/**
 * Plans made once per session on the send path. A PL/pgSQL statement with parameters is planned
 * again on every execution for as long as PostgreSQL judges a plan made for the values at hand
 * cheaper than one made for any values (plan_cache_mode = auto). For the send path's statements
 * that judgement never settled: quiet_hour_rules matched against the contact's number, a sender's
 * due messages, a batch's messages by id. Each was planned anew for every message or every
 * batch, and the planning cost more than the statement.
 *
 * Every statement below looks its rows up by key or walks an index in order, whatever the
 * values, so a generic plan is the plan a custom one would be, made once per session. Measured
 * (npm run bench -- peers, 20,000 jobs, the same machine and morning): herald.allowed_send_time,
 * called twice per message (at the claim and at the confirmation), went from ~54 to ~18 µs a call
 * on its own; the claim alone from 6,318 to 7,049 jobs/s; the batched cycle from 2,968 to 3,186;
 * the cycle one message at a time from 584 to 761, its server CPU per 1,000 messages from 2.98 s
 * to 2.22 s.
 *
 * A function's setting holds for everything it calls, so the rules (herald.apply_send_rules,
 * herald.send_rule, the ledger's triggers) are planned once as part of these too.
 *
 *   allowed_send_time       per message: the quiet-hour rules that apply to its recipient.
 *   contact_cap_next_time   per marketing message at queueing: the contact's messages today.
 *   claim_messages          per sender and per batch.
 *   confirm_send, confirm_send_each, record_send_result, record_send_results
 *                           per batch, or per message when nothing arrives with it.
 */

/** Section - the per-message rules */
alter function herald.allowed_send_time(public.contacts, public.message_category, public.workspaces, timestamptz)
  set plan_cache_mode = force_generic_plan;
alter function herald.contact_cap_next_time(public.contacts, timestamptz, integer)
  set plan_cache_mode = force_generic_plan;

/** Section - the dispatcher's calls */
alter function herald.claim_messages(integer, interval, interval) set plan_cache_mode = force_generic_plan;
alter function herald.confirm_send(uuid[], integer[], interval) set plan_cache_mode = force_generic_plan;
alter function herald.confirm_send_each(uuid[], integer[], interval) set plan_cache_mode = force_generic_plan;
alter function herald.record_send_result(uuid, integer, text, text, text, integer, text, integer)
  set plan_cache_mode = force_generic_plan;
alter function herald.record_send_results(uuid[], integer[], text[], text[], text[], integer[], text[], integer[])
  set plan_cache_mode = force_generic_plan;
