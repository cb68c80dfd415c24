"""services/workmail."""
