"""Write-ahead journal of sequenced commands (with the events they produced), snapshots, replay."""

from tradehall.journal.records import JournalRecord

__all__ = ["JournalRecord"]
