/**
 * Inbound idempotency on the signed MessageSid.
 *
 * apply_inbound recognised a redelivered inbound webhook by Twilio's I-Twilio-Idempotency-Token
 * header when there was one. The header is not covered by X-Twilio-Signature: a captured START
 * replayed with a fresh token after a later STOP opted the contact back in. The key of an inbound
 * event is now its MessageSid (signed), whatever the header says, set on the table itself so no
 * caller can choose another.
 */
create function herald.provider_events_inbound_key() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.provider_sid is null then
    raise exception 'an inbound provider event needs its MessageSid' using errcode = '23502';
  end if;
  new.idempotency_token := 'inbound:' || new.provider_sid;
  return new;
end;
$$;
create trigger provider_events_inbound_key before insert on public.provider_events
for each row when (new.kind = 'inbound') execute function herald.provider_events_inbound_key();
comment on function herald.provider_events_inbound_key() is 'An inbound event is keyed by its signed MessageSid, never by the unsigned idempotency header: a sid is applied once.';
