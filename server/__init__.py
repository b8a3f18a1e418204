"""The mTLS server: trio, client certificates required and verified."""
