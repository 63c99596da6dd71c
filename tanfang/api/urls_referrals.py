"""API endpoints for referrals (issue 5): views_referrals.py has what each one does."""

from django.urls import URLPattern, path

from tanfang.api import views_referrals as referrals

urlpatterns: list[URLPattern] = [
    path("referrals/", referrals.ReferralListView.as_view(), name="referral-list"),
    path("referrals/<int:pk>/", referrals.ReferralDetailView.as_view(), name="referral-detail"),
    path(
        "referrals/<int:pk>/steps/",
        referrals.ReferralStepView.as_view(),
        name="referral-steps",
    ),
]
