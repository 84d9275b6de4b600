# benchrelay -policy: the same gateway without reputation lists (the
# -dns-zone server is configured but never asked).
auth { enabled = false }
