"""Pages of referrals: the list, one referral, a step on (issue 5)."""

from django.urls import path

from tanfang.web.views.referrals import referral_detail, referral_list, referral_step

urlpatterns = [
    path("referrals/", referral_list, name="referral-list"),
    path("referrals/<int:referral_id>/", referral_detail, name="referral-detail"),
    path("referrals/<int:referral_id>/step/", referral_step, name="referral-step"),
]
