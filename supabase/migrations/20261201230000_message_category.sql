/**
 * Message category: every message is `transactional` or `marketing`, because the law treats them
 * differently. Marketing (sequence steps, campaigns, the daily lead queue) must keep to the legal
 * sending hours in the recipient's zone, the per-contact daily cap and, where a workspace asks
 * for it, a recorded opt-in; transactional messages (appointment reminders, one-time codes)
 * follow the workspace's own window only and are exempt from caps and consent requirements.
 * Neither is ever exempt from an opt-out.
 *
 * The category is decided where the row is made, by one rule in one trigger, so that no producer
 * can forget it: a message that names none is transactional when it reminds of an appointment and
 * marketing otherwise (the safe default: the stricter rules apply). A producer that knows better
 * (schedule_message with category => 'transactional' for a one-time code) says so and is kept.
 *
 * Also adds the cancel reason the consent rule gives (`no_consent`); it is its own statement here
 * because a new enum value cannot be used in the transaction that adds it, and the consents
 * migration that follows uses it.
 */

/** Section - types */
create type public.message_category as enum ('transactional', 'marketing');
comment on type public.message_category is 'transactional: reminders, one-time codes (workspace window only, no cap, no consent requirement); marketing: sequences, campaigns, the lead queue (legal hours, per-contact cap, consent when required). Opt-outs stop both.';

alter type public.cancel_reason add value if not exists 'no_consent';

/** Section - messages.category */
-- Added with a default so existing rows get one; appointment reminders made before this
-- migration are transactional; then the default goes, so that a message that names no category
-- reaches the trigger below as null and the trigger decides.
alter table public.messages add column category public.message_category not null default 'marketing';
update public.messages set category = 'transactional' where appointment_id is not null;
alter table public.messages alter column category drop default;
comment on column public.messages.category is 'transactional or marketing; when an insert names none, transactional if appointment_id is set, else marketing (herald.messages_default_category).';

create function herald.messages_default_category() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.category := case when new.appointment_id is not null then 'transactional' else 'marketing' end;
  return new;
end;
$$;
comment on function herald.messages_default_category() is 'A message inserted without a category: transactional when it reminds of an appointment, marketing otherwise.';
revoke execute on function herald.messages_default_category() from public;
create trigger messages_default_category before insert on public.messages
for each row when (new.category is null) execute function herald.messages_default_category();
comment on trigger messages_default_category on public.messages is 'Fills category when the insert names none (herald.messages_default_category).';
