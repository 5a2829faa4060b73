/**
 * Consent records: how and when each contact opted in or out, per channel, kept append-only so
 * that an audit can be answered ("show me this number's opt-in") and nobody can rewrite it.
 *
 *   public.consents                   one row per opt-in or opt-out Herald applied or was told of
 *   public.record_consent()           the app records an opt-in it collected (form, checkbox,
 *                                     import) or an opt-out a person asked for some other way
 *   herald.record_consent_event()     Herald's own paths (keywords, Twilio's 21610) write theirs
 *   herald.latest_consent()           the contact's standing on a channel
 *   herald.consent_block_reason()     'no_consent' for marketing to a contact without an opt-in
 *                                     in a workspace with consent_required; null otherwise
 *
 * An opt-out recorded here is applied exactly as a STOP reply is: contacts.opted_out_at is set,
 * and the contacts triggers cancel everything pending and add the number to the suppression list.
 * An opt-in never lifts an opt-out: only the contact does that, by replying START
 * (herald.contacts_guard_opt_in), so record_consent refuses an opt-in for an opted-out number.
 *
 * Consents go with their contact on a hard delete (the opt-out itself survives as a suppression).
 */

/** Section - types and the workspace switch */
create type public.consent_status as enum ('opted_in', 'opted_out');
comment on type public.consent_status is 'What a consent record says: the contact opted in, or out.';

create type public.consent_source as enum ('keyword', 'api', 'form', 'import', 'provider');
comment on type public.consent_source is 'Where a consent came from: keyword (the contact texted START/STOP…), provider (Twilio reported the number unsubscribed, 21610), api, form or import (recorded by the app with record_consent).';

alter table public.workspaces add column consent_required boolean not null default false;
comment on column public.workspaces.consent_required is 'When true, marketing goes only to contacts whose latest consent on the message''s channel is opted_in; the rest is cancelled no_consent. Transactional messages are not affected.';

/** Section - consents */
create table public.consents (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null,
  contact_id uuid not null,
  channel public.channel not null,
  status public.consent_status not null,
  source public.consent_source not null,
  proof text,
  actor text not null default herald.current_actor(),
  -- clock_timestamp, not now(): two records in one transaction (an opt-in, then an opt-out) keep
  -- their order, which is what "latest" means.
  at timestamptz not null default clock_timestamp(),
  foreign key (workspace_id, contact_id) references public.contacts (workspace_id, id) on delete cascade,
  constraint consents_proof_length check (proof is null or length(proof) between 1 and 4000)
);
comment on table public.consents is 'Append-only record of every opt-in and opt-out per contact and channel: what, where from, the proof, who recorded it and when. Written only through record_consent() and Herald''s keyword and provider paths; goes with the contact on a hard delete.';
comment on column public.consents.id is 'Identifies the consent record.';
comment on column public.consents.workspace_id is 'The workspace the contact belongs to.';
comment on column public.consents.contact_id is 'The contact who gave or withdrew consent; the record goes with the contact on a hard delete.';
comment on column public.consents.channel is 'The channel the consent is for: sms or whatsapp.';
comment on column public.consents.status is 'opted_in or opted_out; the latest record per contact and channel is what counts.';
comment on column public.consents.source is 'How it was collected: keyword (a reply), provider (Twilio error 21610), api, form or import.';
comment on column public.consents.proof is 'What shows the consent: the form text or checkbox wording and URL, the import batch, the inbound message sid, the provider error.';
comment on column public.consents.actor is 'Who recorded it: a user id, or provider / dispatcher / service_role.';
comment on column public.consents.at is 'When Herald recorded it; the latest per (contact, channel) is the contact''s standing.';
create index consents_contact_channel_idx on public.consents (workspace_id, contact_id, channel, at desc);

alter table public.consents enable row level security;
create policy consents_select on public.consents for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
revoke all on public.consents from anon;
revoke insert, update, delete, truncate on public.consents from authenticated;

-- Append-only for everyone, service_role and table owner included: only the cascade of a hard
-- delete of the contact (a foreign-key action, so trigger depth > 1) may remove rows.
create function herald.consents_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and pg_trigger_depth() > 1 then
    return old;
  end if;
  raise exception 'consents are append-only' using errcode = '42501',
    hint = 'Record a new consent with record_consent(); rows go only with their contact on a hard delete.';
end;
$$;
comment on function herald.consents_append_only() is 'Consents are append-only: no update, delete or truncate except the cascade of the contact''s hard delete.';
revoke execute on function herald.consents_append_only() from public;
create trigger consents_append_only before update or delete on public.consents
for each row execute function herald.consents_append_only();
create trigger consents_no_truncate before truncate on public.consents
for each statement execute function herald.consents_append_only();
comment on trigger consents_append_only on public.consents is 'Refuses update and delete except the hard-delete cascade (herald.consents_append_only).';
comment on trigger consents_no_truncate on public.consents is 'Refuses truncate (herald.consents_append_only).';

/** Section - reading consent */
create function herald.latest_consent(p_contact_id uuid, p_channel public.channel) returns public.consent_status
language sql
stable
set search_path = ''
as $$
  select k.status from public.consents k
  where k.contact_id = p_contact_id and k.channel = p_channel
    and k.workspace_id = (select c.workspace_id from public.contacts c where c.id = p_contact_id)
  order by k.at desc, k.id desc
  limit 1
$$;
comment on function herald.latest_consent(uuid, public.channel) is 'The contact''s latest consent status on a channel, or null if none was ever recorded. Security invoker: a member sees only their workspace''s.';
revoke execute on function herald.latest_consent(uuid, public.channel) from public;
grant execute on function herald.latest_consent(uuid, public.channel) to service_role;

-- Why a message of this category may not go to this contact on this channel for lack of consent,
-- or null. Opt-outs, deletion and takeover are herald.contact_block_reason()'s; this is only the
-- workspace's consent requirement, which transactional messages are exempt from.
create function herald.consent_block_reason(p_contact public.contacts, p_channel public.channel,
                                            p_category public.message_category) returns public.cancel_reason
language sql
stable
set search_path = ''
as $$
  select case
    when p_category = 'marketing'
         and (select w.consent_required from public.workspaces w where w.id = p_contact.workspace_id)
         and herald.latest_consent(p_contact.id, p_channel) is distinct from 'opted_in'
      then 'no_consent'::public.cancel_reason
  end
$$;
comment on function herald.consent_block_reason(public.contacts, public.channel, public.message_category) is 'no_consent when the message is marketing, the workspace requires consent and the contact''s latest consent on the channel is not opted_in; null otherwise.';
revoke execute on function herald.consent_block_reason(public.contacts, public.channel, public.message_category) from public;
grant execute on function herald.consent_block_reason(public.contacts, public.channel, public.message_category) to service_role;

/** Section - writing consent */
-- One consent row, validated. Herald's inbound and provider paths call it in their own
-- transaction (a STOP reply: status opted_out, source keyword, proof the inbound sid) after they
-- have applied the opt-out or opt-in to the contact; it writes the record, nothing else.
create function herald.record_consent_event(
  p_workspace_id uuid,
  p_contact_id uuid,
  p_channel public.channel,
  p_status public.consent_status,
  p_source public.consent_source,
  p_proof text default null
) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_id uuid;
begin
  if p_workspace_id is null or p_contact_id is null or p_channel is null or p_status is null or p_source is null then
    raise exception 'workspace, contact, channel, status and source are required' using errcode = '22023';
  end if;
  insert into public.consents (workspace_id, contact_id, channel, status, source, proof)
  values (p_workspace_id, p_contact_id, p_channel, p_status, p_source, nullif(btrim(p_proof), ''))
  returning id into v_id;
  return v_id;
end;
$$;
comment on function herald.record_consent_event(uuid, uuid, public.channel, public.consent_status, public.consent_source, text) is 'Writes one consent record for Herald''s own paths (keyword replies, provider 21610); the caller has applied the opt-out or opt-in to the contact itself.';
revoke execute on function herald.record_consent_event(uuid, uuid, public.channel, public.consent_status, public.consent_source, text) from public, authenticated;
grant execute on function herald.record_consent_event(uuid, uuid, public.channel, public.consent_status, public.consent_source, text) to service_role;

create function public.record_consent(contact_id uuid, channel text, status text, source text, proof text default null)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_contact public.contacts;
  v_channel public.channel;
  v_status public.consent_status;
  v_source public.consent_source;
begin
  perform herald.require_user();
  if record_consent.channel is null or record_consent.channel not in ('sms', 'whatsapp') then
    raise exception 'unknown channel "%"', record_consent.channel using errcode = '22023', hint = 'Use sms or whatsapp.';
  end if;
  if record_consent.status is null or record_consent.status not in ('opted_in', 'opted_out') then
    raise exception 'unknown consent status "%"', record_consent.status using errcode = '22023', hint = 'Use opted_in or opted_out.';
  end if;
  -- keyword and provider records are Herald's own, made from what the contact or Twilio said:
  -- an app recording one would be claiming something Herald never saw.
  if record_consent.source is null or record_consent.source not in ('api', 'form', 'import') then
    raise exception 'consent source "%" cannot be recorded by the app', record_consent.source using errcode = '22023',
      hint = 'Use form, import or api; keyword and provider consents are recorded by Herald from the contact''s replies and Twilio.';
  end if;
  if length(btrim(coalesce(record_consent.proof, ''))) > 4000 then
    raise exception 'proof is longer than 4000 characters' using errcode = '22023';
  end if;
  if record_consent.status = 'opted_in' and length(btrim(coalesce(record_consent.proof, ''))) = 0 then
    raise exception 'an opt-in needs its proof' using errcode = '22023',
      hint = 'Pass what the contact agreed to: the form text or checkbox wording, the URL, the import batch.';
  end if;
  v_channel := record_consent.channel::public.channel;
  v_status := record_consent.status::public.consent_status;
  v_source := record_consent.source::public.consent_source;

  v_contact := herald.member_contact(record_consent.contact_id);
  if v_contact.deleted_at is not null then
    raise exception 'contact % is deleted', v_contact.id using errcode = '55000',
      hint = 'restore_contact() brings a soft-deleted contact back.';
  end if;

  if v_status = 'opted_in' then
    -- The same rule as herald.contacts_guard_opt_in: an opt-out is lifted by the contact only.
    if herald.contact_block_reason(v_contact) = 'contact_opted_out' then
      raise exception 'contact % opted out; only the contact can opt back in', v_contact.id using errcode = '55000',
        hint = 'The contact opts back in by replying START (or YES, UNSTOP) to your number.';
    end if;
  elsif v_contact.opted_out_at is null then
    -- Applied as a STOP reply is: the contacts triggers cancel what is pending, stop enrollments,
    -- write the activity and suppress the number.
    update public.contacts set opted_out_at = now() where id = v_contact.id;
  end if;

  return herald.record_consent_event(v_contact.workspace_id, v_contact.id, v_channel, v_status, v_source,
                                     record_consent.proof);
end;
$$;
comment on function public.record_consent(uuid, text, text, text, text) is 'Records a consent the app collected: opted_in (with its proof) or opted_out, source form, import or api. An opt-out is applied as a STOP reply is (pending messages cancelled, number suppressed); an opt-in for an opted-out contact is refused (55000): only the contact lifts an opt-out.';
revoke execute on function public.record_consent(uuid, text, text, text, text) from public, anon;
grant execute on function public.record_consent(uuid, text, text, text, text) to authenticated, service_role;
