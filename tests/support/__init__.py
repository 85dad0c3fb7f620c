"""Test doubles and helpers shared by the test tiers; never shipped in a deployment package."""
