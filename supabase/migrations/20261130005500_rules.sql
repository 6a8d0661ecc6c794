-- Rules: the support alert fires 2 minutes after a session was accepted and not started, so a
-- customer waiting on a mechanic who does not start is helped while still waiting.
update private.settings set value = '"2 minutes"',
       description = 'a session still waiting to start this long after it was accepted alerts support'
 where key = 'nudges.support_alert_after';
update private.email_templates set description = 'to SUPPORT_EMAIL: an accepted session was not started after 2 minutes'
 where name = 'support_alert';
