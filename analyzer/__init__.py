"""Analyzer: frames + standing questions → engine calls → tracked object events and summaries."""
