"""Campaign updates: news staff write (subject and body per language) and send to every confirmed signer of
a campaign's petitions who opted in, one message per person, in batches that resume after a crash."""
