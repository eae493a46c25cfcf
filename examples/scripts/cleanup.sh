#!/bin/sh
# Used by weekly.yaml in standalone mode (script.file is relative to the scripts folder).
echo "cleaning up files older than 30 days"
